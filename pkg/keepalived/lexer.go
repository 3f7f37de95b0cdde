package keepalived

import (
	"strings"
)

// keepalived's parser is line based: a statement never spans lines, quoted strings end at the
// end of the line, and '{' / '}' may appear anywhere on a line. This file splits one line
// into tokens; reader.go feeds it lines across files and includes.

type tokenKind uint8

const (
	tokWord tokenKind = iota
	tokOpen
	tokClose
)

type token struct {
	kind   tokenKind
	text   string // the word with quotes removed and escapes resolved
	pos    Pos
	quoted bool // some part of the word was quoted
}

// stripComment returns line up to the first '#' or '!' that is not inside quotes. Comments
// start anywhere, even in the middle of a word (keepalived treats "ab!cd" as "ab").
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case c == '#' || c == '!':
			return line[:i]
		}
	}
	return line
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

// tokenize splits a comment-free line. col0 is the column of line[0] minus one.
// With braces false, '{' and '}' are ordinary characters (include patterns).
func tokenize(line string, file string, lineNo, col0, maxToken int, braces bool) ([]token, *Error) {
	var toks []token
	i := 0
	for i < len(line) {
		c := line[i]
		if isSpace(c) {
			i++
			continue
		}
		p := Pos{File: file, Line: lineNo, Col: col0 + i + 1}
		if braces && (c == '{' || c == '}') {
			k := tokOpen
			if c == '}' {
				k = tokClose
			}
			toks = append(toks, token{kind: k, text: string(c), pos: p})
			i++
			continue
		}
		var b strings.Builder
		quoted := false
		for i < len(line) && !isSpace(line[i]) && (!braces || line[i] != '{' && line[i] != '}') {
			c := line[i]
			if c != '"' && c != '\'' {
				b.WriteByte(c)
				i++
			} else {
				quoted = true
				start := i
				i++
				closed := false
				for i < len(line) {
					d := line[i]
					if d == c {
						closed = true
						i++
						break
					}
					if d == '\\' {
						n, adv := unescape(line[i:])
						if adv == 0 {
							break // a backslash at the end of the line: unterminated
						}
						b.WriteString(n)
						i += adv
						continue
					}
					b.WriteByte(d)
					i++
				}
				if !closed {
					return nil, errorf(Pos{File: file, Line: lineNo, Col: col0 + start + 1}, "unterminated quoted string")
				}
			}
			if b.Len() > maxToken {
				return nil, errorf(p, "word longer than %d bytes", maxToken)
			}
		}
		toks = append(toks, token{kind: tokWord, text: b.String(), pos: p, quoted: quoted})
	}
	return toks, nil
}

// unescape decodes the escape sequence at the start of s (s[0] == '\\'), as keepalived does
// inside quoted strings: \a \b \E \f \n \r \t \v, \nnn (octal), \xXX (hex), \cC (control
// character) and \C for any other C. It returns the decoded text and how many bytes it used,
// or 0 when s is a lone backslash.
func unescape(s string) (string, int) {
	if len(s) < 2 {
		return "", 0
	}
	switch c := s[1]; c {
	case 'a':
		return "\a", 2
	case 'b':
		return "\b", 2
	case 'E':
		return "\x1b", 2
	case 'f':
		return "\f", 2
	case 'n':
		return "\n", 2
	case 'r':
		return "\r", 2
	case 't':
		return "\t", 2
	case 'v':
		return "\v", 2
	case 'x':
		v, n := 0, 0
		for n < 2 && 2+n < len(s) && isHex(s[2+n]) {
			v = v*16 + hexVal(s[2+n])
			n++
		}
		if n == 0 {
			return "x", 2
		}
		return string([]byte{byte(v)}), 2 + n
	case 'c':
		if len(s) < 3 {
			return "c", 2
		}
		return string([]byte{s[2] & 0x1f}), 3
	default:
		if c >= '0' && c <= '7' {
			v, n := 0, 0
			for n < 3 && 1+n < len(s) && s[1+n] >= '0' && s[1+n] <= '7' {
				v = v*8 + int(s[1+n]-'0')
				n++
			}
			return string([]byte{byte(v)}), 1 + n
		}
		return string([]byte{c}), 2
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}

// splitCommand splits a script string into argv the way keepalived 2.x does before it execs
// the script directly (no shell): whitespace separates arguments, single and double quotes
// group, a backslash outside single quotes escapes the next character. ok is false when a
// quote is not closed.
func splitCommand(s string) (argv []string, ok bool) {
	words, ok := splitWords(s)
	for _, w := range words {
		argv = append(argv, w.text)
	}
	return argv, ok
}

// cmdWord is one argument of a command and whether it has, outside quotes, a character only
// a shell gives a meaning to.
type cmdWord struct {
	text    string
	special bool
}

func splitWords(s string) (words []cmdWord, ok bool) {
	var b strings.Builder
	in, special := false, false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			in = true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			in = true
		case isSpace(c) || c == '\n':
			if in {
				words = append(words, cmdWord{text: b.String(), special: special})
				b.Reset()
				in, special = false, false
			}
		default:
			if strings.IndexByte(shellChars, c) >= 0 {
				special = true
			}
			b.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	if in {
		words = append(words, cmdWord{text: b.String(), special: special})
	}
	return words, true
}
