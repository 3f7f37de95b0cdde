package keepalived

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Options bound and adjust parsing. The zero value is usable: every zero limit takes the
// default shown.
type Options struct {
	// ConfigID is keepalived's config id (its -i option, by default the host name): lines
	// starting with "@ID" are kept only for that id, lines starting with "@^ID" for every
	// other id. When empty, "@ID" lines are skipped and "@^ID" lines kept, each with a
	// warning.
	ConfigID string

	MaxFileSize     int64 // bytes per file (default 1 MiB)
	MaxTotalSize    int64 // bytes over all files (default 8 MiB)
	MaxFiles        int   // files read, the main one included (default 64)
	MaxIncludeDepth int   // nested includes (default 8)
	MaxNesting      int   // nested blocks (default 16)
	MaxTokenLen     int   // bytes in one word (default 4096)
	MaxLineLen      int   // bytes in one line, after parameter substitution (default 64 KiB)
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if r.MaxFileSize <= 0 {
		r.MaxFileSize = 1 << 20
	}
	if r.MaxTotalSize <= 0 {
		r.MaxTotalSize = 8 << 20
	}
	def(&r.MaxFiles, 64)
	def(&r.MaxIncludeDepth, 8)
	def(&r.MaxNesting, 16)
	def(&r.MaxTokenLen, 4096)
	def(&r.MaxLineLen, 64<<10)
	return r
}

// source is one open file.
type source struct {
	fsPath  string // path inside the fs.FS
	display string // path as shown in positions
	data    string
	off     int
	line    int
	parent  *source // the file that included this one
}

// reader yields the token lines of a configuration, following includes and applying
// conditional lines and parameter substitution.
type reader struct {
	fsys    fs.FS
	opts    Options
	display func(fsPath string) string

	stack    []*source
	files    []string
	total    int64
	expanded int64 // bytes produced by parameter substitution
	defs     map[string]string
	warnings []Warning
}

var includeKeywords = map[string]bool{
	"include": true, "includer": true, "includem": true, "includew": true, "includeb": true, "includea": true,
}

// open reads a file for inclusion by parent (nil for the main file). It does not push it.
func (r *reader) open(fsPath string, at Pos, parent *source) (*source, *Error) {
	disp := r.display(fsPath)
	if len(r.files) >= r.opts.MaxFiles {
		return nil, errorf(at, "too many configuration files (limit %d)", r.opts.MaxFiles)
	}
	depth := 0
	for p := parent; p != nil; p = p.parent {
		if p.fsPath == fsPath {
			var chain []string
			for q := parent; q != nil; q = q.parent {
				chain = append([]string{q.display}, chain...)
			}
			chain = append(chain, disp)
			return nil, errorf(at, "include cycle: %s", strings.Join(chain, " -> "))
		}
		depth++
	}
	if depth > r.opts.MaxIncludeDepth {
		return nil, errorf(at, "includes nested deeper than %d", r.opts.MaxIncludeDepth)
	}
	f, err := r.fsys.Open(fsPath)
	if err != nil {
		return nil, &Error{Pos: at, Msg: "cannot open " + disp, Err: err}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && (st.IsDir() || parent != nil && !st.Mode().IsRegular()) {
		// include looked already; this catches a file replaced since, and a main file that
		// is a directory. The main file may be a pipe: convert <(ssh lb1 cat keepalived.conf).
		return nil, errorf(at, "%s is %s, not a regular file", disp, fileKind(st.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, r.opts.MaxFileSize+1))
	if err != nil {
		return nil, &Error{Pos: at, Msg: "cannot read " + disp, Err: err}
	}
	if int64(len(data)) > r.opts.MaxFileSize {
		// Point at the byte where the limit is reached: a position inside the file says more
		// than the include that named it.
		head := string(data[:r.opts.MaxFileSize])
		line := strings.Count(head, "\n") + 1
		col := len(head) - strings.LastIndexByte(head, '\n')
		return nil, errorf(Pos{File: disp, Line: line, Col: col}, "file is larger than %d bytes (the limit is reached here)", r.opts.MaxFileSize)
	}
	r.total += int64(len(data))
	if r.total > r.opts.MaxTotalSize {
		return nil, errorf(at, "configuration files are larger than %d bytes in total", r.opts.MaxTotalSize)
	}
	r.files = append(r.files, disp)
	return &source{fsPath: fsPath, display: disp, data: string(data), parent: parent}, nil
}

// fileKind names the type of a file that is not a regular file, for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return "an irregular file"
}

// next returns the tokens of the next non-empty line, or ok == false at the end of the
// configuration.
func (r *reader) next() (toks []token, ok bool, err *Error) {
	for len(r.stack) > 0 {
		s := r.stack[len(r.stack)-1]
		if s.off >= len(s.data) {
			r.stack = r.stack[:len(r.stack)-1]
			continue
		}
		end := strings.IndexByte(s.data[s.off:], '\n')
		var raw string
		if end < 0 {
			raw = s.data[s.off:]
			s.off = len(s.data)
		} else {
			raw = s.data[s.off : s.off+end]
			s.off += end + 1
		}
		s.line++
		lineStart := Pos{File: s.display, Line: s.line, Col: 1}
		if len(raw) > r.opts.MaxLineLen {
			return nil, false, errorf(lineStart, "line longer than %d bytes", r.opts.MaxLineLen)
		}
		toks, err := r.lineTokens(s, raw)
		if err != nil {
			return nil, false, err
		}
		if len(toks) == 0 {
			continue
		}
		if toks[0].kind == tokWord && !toks[0].quoted && includeKeywords[toks[0].text] {
			if err := r.include(s, toks); err != nil {
				return nil, false, err
			}
			continue
		}
		return toks, true, nil
	}
	return nil, false, nil
}

// lineTokens applies conditional configuration, parameter definitions and substitution to
// one raw line and tokenizes it.
func (r *reader) lineTokens(s *source, raw string) ([]token, *Error) {
	line := stripComment(raw)
	trimmed := strings.TrimLeft(line, " \t\r\f\v")
	col0 := len(line) - len(trimmed)
	at := Pos{File: s.display, Line: s.line, Col: col0 + 1}
	conditional, substituted := false, false

	if strings.HasPrefix(trimmed, "@") {
		conditional = true
		n := strings.IndexAny(trimmed, " \t")
		if n < 0 {
			n = len(trimmed)
		}
		id, neg := trimmed[1:n], false
		if strings.HasPrefix(id, "^") {
			id, neg = id[1:], true
		}
		if id == "" {
			return nil, errorf(at, "conditional configuration without a config id after '@'")
		}
		keep := (r.opts.ConfigID == id) != neg
		if r.opts.ConfigID == "" && strings.TrimSpace(trimmed[n:]) != "" {
			what := "skipped"
			if keep {
				what = "kept"
			}
			r.warnings = append(r.warnings, Warning{Pos: at, Msg: "conditional line for config id '" +
				trimmed[:n] + "' " + what + ": no config id given (keepalived uses its -i option or the host name); pass the config id to choose"})
		}
		if !keep {
			return nil, nil
		}
		// Blank out "@ID" so that columns stay those of the file.
		prefix := col0 + n
		line = strings.Repeat(" ", prefix) + line[prefix:]
		trimmed = strings.TrimLeft(line, " \t\r\f\v")
		col0 = len(line) - len(trimmed)
		at.Col = col0 + 1
	}

	if strings.HasPrefix(trimmed, "~SEQ") {
		return nil, errorf(at, "~SEQ sequence blocks are not supported; expand them before converting")
	}
	if name, value, ok := paramDefinition(trimmed); ok {
		value = strings.TrimSpace(value)
		if strings.HasSuffix(value, "\\") {
			return nil, errorf(at, "multiline parameter definitions ($%s= ... \\) are not supported; expand them before converting", name)
		}
		if r.defs == nil {
			r.defs = map[string]string{}
		}
		r.defs[name] = value
		return nil, nil
	}
	if strings.Contains(line, "$") {
		out, err := r.substitute(s, line, at)
		if err != nil {
			return nil, err
		}
		substituted = out != line
		line = out
		if len(line) > r.opts.MaxLineLen {
			return nil, errorf(at, "line longer than %d bytes after parameter substitution", r.opts.MaxLineLen)
		}
	}
	// An include names a file pattern, where braces are csh alternatives, not blocks.
	fields := strings.Fields(line)
	isInclude := len(fields) > 0 && includeKeywords[fields[0]]
	toks, err := tokenize(line, s.display, s.line, 0, r.opts.MaxTokenLen, !isInclude)
	if err != nil {
		return nil, err
	}
	if (conditional || substituted) && isInclude {
		// keepalived looks for includes before it applies '@' and '$', so it would not
		// include anything here; refuse rather than guess.
		return nil, errorf(toks[0].pos, "%s after conditional configuration or parameter substitution is not honoured by keepalived; write it on a line of its own", toks[0].text)
	}
	return toks, nil
}

// paramDefinition recognises "$NAME=VALUE".
func paramDefinition(s string) (name, value string, ok bool) {
	if !strings.HasPrefix(s, "$") {
		return "", "", false
	}
	i := 1
	for i < len(s) && isNameChar(s[i], i == 1) {
		i++
	}
	if i == 1 || i >= len(s) || s[i] != '=' {
		return "", "", false
	}
	return s[1:i], s[i+1:], true
}

func isNameChar(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// substitute replaces $NAME (followed by whitespace or the end of the line) and ${NAME} by
// the values of defined parameters; undefined names stay as they are. Values are expanded
// in turn (keepalived rescans the line after each replacement), in one pass over the text.
func (r *reader) substitute(s *source, line string, at Pos) (string, *Error) {
	var b strings.Builder
	if err := r.expand(s, &b, line, true, 0, at); err != nil {
		return "", err
	}
	// Bound the work over the whole configuration: a short line can expand to MaxLineLen.
	r.expanded += int64(b.Len())
	if r.expanded > 4*r.opts.MaxTotalSize {
		return "", errorf(at, "parameter substitution expands the configuration beyond %d bytes", 4*r.opts.MaxTotalSize)
	}
	return b.String(), nil
}

// maxParamDepth bounds how deeply parameter values may refer to other parameters.
const maxParamDepth = 32

// expand writes text to b with its parameters replaced. endIsSpace tells whether what
// follows text in the line is whitespace (or the end), which decides whether "$NAME" at the
// very end of text is a reference.
func (r *reader) expand(s *source, b *strings.Builder, text string, endIsSpace bool, depth int, at Pos) *Error {
	if depth > maxParamDepth {
		return errorf(at, "parameter substitution nests deeper than %d (a parameter refers to itself?)", maxParamDepth)
	}
	for i := 0; i < len(text); {
		if b.Len() > r.opts.MaxLineLen {
			return errorf(at, "line longer than %d bytes after parameter substitution", r.opts.MaxLineLen)
		}
		c := text[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		var name string
		var end int
		if i+1 < len(text) && text[i+1] == '{' {
			j := strings.IndexByte(text[i+2:], '}')
			if j < 0 {
				b.WriteByte(c)
				i++
				continue
			}
			name, end = text[i+2:i+2+j], i+3+j
		} else {
			j := i + 1
			for j < len(text) && isNameChar(text[j], j == i+1) {
				j++
			}
			followed := j < len(text) && isSpace(text[j]) || j == len(text) && endIsSpace
			if j == i+1 || !followed {
				b.WriteByte(c)
				i++
				continue
			}
			name, end = text[i+1:j], j
		}
		v, ok, err := r.lookup(s, name, at)
		if err != nil {
			return err
		}
		if !ok {
			b.WriteByte(c)
			i++
			continue
		}
		after := end == len(text) && endIsSpace || end < len(text) && isSpace(text[end])
		if err := r.expand(s, b, v, after, depth+1, at); err != nil {
			return err
		}
		i = end
	}
	if b.Len() > r.opts.MaxLineLen {
		return errorf(at, "line longer than %d bytes after parameter substitution", r.opts.MaxLineLen)
	}
	return nil
}

func (r *reader) lookup(s *source, name string, at Pos) (string, bool, *Error) {
	switch name {
	case "_PWD":
		return path.Dir(s.display), true, nil
	case "_INSTANCE":
		return r.opts.ConfigID, r.opts.ConfigID != "", nil
	case "_HASH":
		return "#", true, nil
	case "_BANG":
		return "!", true, nil
	}
	if strings.HasPrefix(name, "_RANDOM") {
		return "", false, errorf(at, "${_RANDOM} is not supported: the conversion must be deterministic")
	}
	v, ok := r.defs[name]
	return v, ok, nil
}

// include opens the files an include line names, in glob order, on top of the stack.
func (r *reader) include(s *source, toks []token) *Error {
	kw := toks[0]
	if len(toks) != 2 || toks[1].kind != tokWord {
		return errorf(kw.pos, "%s takes exactly one file name or pattern", kw.text)
	}
	pattern := toks[1].text
	at := toks[1].pos
	if pattern == "" {
		return errorf(at, "%s: empty file name", kw.text)
	}
	var base string
	if strings.HasPrefix(pattern, "/") {
		base = strings.TrimLeft(path.Clean(pattern), "/")
	} else {
		base = path.Join(path.Dir(s.fsPath), pattern)
	}
	if base == "" || base == ".." || strings.HasPrefix(base, "../") {
		return errorf(at, "%s: %q is outside the configuration root", kw.text, pattern)
	}
	patterns, err := expandBraces(base, 64)
	if err != nil {
		return errorf(at, "%s: %v", kw.text, err)
	}
	var matches []string
	seen := map[string]bool{}
	for _, p := range patterns {
		m, err := fs.Glob(r.fsys, p)
		if err != nil {
			return &Error{Pos: at, Msg: kw.text + ": bad pattern " + pattern, Err: err}
		}
		sort.Strings(m)
		for _, f := range m {
			if !seen[f] {
				seen[f] = true
				matches = append(matches, f)
			}
		}
	}
	if len(matches) == 0 {
		if kw.text == "include" {
			// Plain include tolerates missing files, as keepalived does.
			r.warnings = append(r.warnings, Warning{Pos: kw.pos, Msg: "include " + pattern + " matches no file; nothing included"})
			return nil
		}
		return errorf(at, "%s %s matches no file", kw.text, pattern)
	}
	srcs := make([]*source, 0, len(matches))
	for _, m := range matches {
		// Only regular files (or links to them): opening a named pipe blocks until a writer
		// comes, a device may never end or have side effects, a directory is no text. Look
		// before opening, through links.
		st, serr := fs.Stat(r.fsys, m)
		if serr != nil {
			return &Error{Pos: at, Msg: "cannot open " + r.display(m), Err: serr}
		}
		if !st.Mode().IsRegular() {
			return errorf(at, "%s %s: %s is %s, not a regular file; include only regular files", kw.text, pattern, r.display(m), fileKind(st.Mode()))
		}
		src, err := r.open(m, at, s)
		if err != nil {
			return err
		}
		srcs = append(srcs, src)
	}
	// Push in reverse so that the first match is read first.
	for i := len(srcs) - 1; i >= 0; i-- {
		r.stack = append(r.stack, srcs[i])
	}
	return nil
}

// expandBraces expands csh-style braces: "a{b,c}d" -> "abd", "acd". It refuses patterns
// that expand to more than limit names.
func expandBraces(p string, limit int) ([]string, error) {
	open := -1
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth > 0 {
				continue
			}
			// Split the alternatives at top-level commas.
			var alts []string
			start, d := open+1, 0
			for j := open + 1; j < i; j++ {
				switch p[j] {
				case '{':
					d++
				case '}':
					d--
				case ',':
					if d == 0 {
						alts = append(alts, p[start:j])
						start = j + 1
					}
				}
			}
			alts = append(alts, p[start:i])
			if len(alts) == 1 {
				// "{x}" without a comma is literal in csh.
				continue
			}
			var out []string
			for _, a := range alts {
				sub, err := expandBraces(p[:open]+a+p[i+1:], limit)
				if err != nil {
					return nil, err
				}
				out = append(out, sub...)
				if len(out) > limit {
					return nil, errors.New("pattern expands to too many names")
				}
			}
			return out, nil
		}
	}
	return []string{p}, nil
}
