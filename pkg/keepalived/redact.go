package keepalived

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A keepalived.conf holds secrets: the auth_pass of PASS authentication, and credentials in
// the commands of scripts (curl http://user:password@host/, curl -u user:password, wget
// --password=...). convert's warnings and errors end up in terminals, CI logs and tickets, so
// every message about the input passes through a redactor before it leaves this package:
// the decoder's and converter's warnf and errorf, and Merge's messages. The manifests keep
// what the VirtualIP needs to work: the PASS password goes into a Secret, and a probe's URL
// or command keeps its credentials as written (with a warning that says so, redacted).

// redacted replaces a secret in messages.
const redacted = "<redacted>"

// minSecretLen is the shortest secret replaced wherever it occurs in a message. A shorter
// one ("ab") would be replaced inside every word that holds it, which mangles the messages
// and shows the secret by the gaps it leaves; such secrets are kept out of messages only by
// the patterns below and by never formatting auth_pass.
const minSecretLen = 4

var (
	// urlUserinfo is the userinfo of a URL: everything between "scheme://" and the last '@'
	// before the path, query or fragment (a password may hold an unescaped '@').
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s'"]*@`)
	// userOption is curl's -u/--user/-U/--proxy-user and wget's --user with a user:password
	// value (a bare user name is no secret: pgrep -u root).
	userOption = regexp.MustCompile(`((?:^|[\s"'])(?:-u|--user|-U|--proxy-user)(?:=|\s+))[^\s"']*:[^\s"']*`)
	// passwordOption is an option whose value is a password or token.
	passwordOption = regexp.MustCompile(`((?:^|[\s"'])(?:` + strings.Join(passwordOptions, "|") + `)(?:=|\s+))[^\s"']+`)
	// authHeader is the value of an Authorization header (curl -H, wget --header).
	authHeader = regexp.MustCompile(`(?i)(authorization:\s*)[^"'\n]+`)
)

// passwordOptions are options of curl, wget and common clients whose value is a secret.
var passwordOptions = []string{"--password", "--http-password", "--ftp-password", "--proxy-password", "--oauth2-bearer", "--pass"}

// userOptions take user[:password] (curl -u, -U; wget --user, --http-user).
var userOptions = []string{"-u", "--user", "-U", "--proxy-user", "--http-user"}

// redactor removes secrets from messages: known secret strings (and their quoted forms)
// wherever they occur, and whatever the patterns above recognise.
type redactor struct {
	secrets []string // distinct, longest first, each at least minSecretLen bytes
	// replace replaces them and the forms %q prints them in, in one pass (so that a secret
	// is not looked for inside the <redacted> of another), the longest first.
	replace *strings.Replacer
}

func newRedactor(lists ...[]string) *redactor {
	var all []string
	for _, l := range lists {
		for _, s := range l {
			if len(s) >= minSecretLen && s != redacted {
				all = append(all, s)
			}
		}
	}
	slices.SortFunc(all, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	r := &redactor{secrets: slices.Compact(all)}
	var olds []string
	for _, sec := range r.secrets {
		// Messages print values with %q, and commands word by word shell-quoted (shellQuote,
		// e.g. Merge's notify comparison, then %q): the secret may show in any of these forms.
		forms := []string{sec}
		if sh := strings.ReplaceAll(sec, "'", `'"'"'`); sh != sec {
			forms = append(forms, sh)
		}
		for _, f := range forms {
			olds = append(olds, f)
			if q := strconv.Quote(f); q[1:len(q)-1] != f {
				olds = append(olds, q[1:len(q)-1])
			}
		}
	}
	slices.SortStableFunc(olds, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(olds))
	for _, o := range olds {
		pairs = append(pairs, o, redacted)
	}
	r.replace = strings.NewReplacer(pairs...)
	return r
}

// merge returns a redactor for the secrets of both.
func (r *redactor) merge(o *redactor) *redactor {
	return newRedactor(r.secrets, o.secrets)
}

// text returns s with every secret replaced by <redacted>.
func (r *redactor) text(s string) string {
	if r != nil {
		s = r.replace.Replace(s)
	}
	// The patterns leave <redacted> as it is, so they may come second. Each runs only when
	// the text has the part every match has: most messages have none, and a configuration
	// of thousands of lines makes as many messages.
	if strings.Contains(s, "://") {
		s = urlUserinfo.ReplaceAllString(s, "${1}"+redacted+"@")
	}
	if strings.Contains(s, "-u") || strings.Contains(s, "-U") {
		s = userOption.ReplaceAllString(s, "${1}"+redacted)
	}
	if strings.Contains(s, "--") {
		s = passwordOption.ReplaceAllString(s, "${1}"+redacted)
	}
	if containsFold(s, "authorization:") {
		s = authHeader.ReplaceAllString(s, "${1}"+redacted)
	}
	return s
}

// containsFold reports whether s contains sub, ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == sub[0] && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// errors redacts the messages of errs in place.
func (r *redactor) errors(errs ErrorList) {
	for _, e := range errs {
		e.Msg = r.text(e.Msg)
	}
}

// warnings redacts the messages of ws in place.
func (r *redactor) warnings(ws []Warning) {
	for i := range ws {
		ws[i].Msg = r.text(ws[i].Msg)
	}
}

// astSecrets collects the secrets of a block tree: every auth_pass value (and the 8 bytes
// keepalived uses of a longer one), and the credentials in any argument.
func astSecrets(nodes []*Node) []string {
	var out []string
	var walk func([]*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			for _, a := range n.Args {
				if n.Keyword == "auth_pass" {
					out = append(out, passwordSecrets(a.Value)...)
				}
				out = append(out, credentialsIn(a.Value)...)
			}
			walk(n.Block)
		}
	}
	walk(nodes)
	return out
}

// configSecrets collects the secrets of a typed configuration, for a Config not made by
// Decode (or changed since).
func configSecrets(cfg *Config) []string {
	var out []string
	text := func(ss ...string) {
		for _, s := range ss {
			out = append(out, credentialsIn(s)...)
		}
	}
	notify := func(ns []Notify) {
		for _, n := range ns {
			text(n.Command)
		}
	}
	for _, s := range cfg.Scripts {
		text(s.Command)
		text(s.ExtraArgs...)
	}
	for _, p := range cfg.TrackProcesses {
		text(p.Params...)
	}
	for _, in := range cfg.Instances {
		if in.Auth != nil {
			out = append(out, passwordSecrets(in.Auth.Pass)...)
		}
		notify(in.Notify)
	}
	for _, g := range cfg.SyncGroups {
		notify(g.Notify)
	}
	return append(out, cfg.secrets...)
}

func passwordSecrets(p string) []string {
	if len(p) > maxAuthPass {
		return []string{p, p[:maxAuthPass]}
	}
	return []string{p}
}

// credentialsIn returns the credentials a piece of configuration text holds: the userinfo
// of URLs (and its password part), the values of the credential options of curl, wget and
// similar clients, and Authorization header values. It looks into quoted words too (sh -c
// '...').
func credentialsIn(s string) []string {
	if !strings.ContainsAny(s, "@:=-") {
		return nil
	}
	var out []string
	userinfo := func(u string) {
		if u == "" {
			return
		}
		out = append(out, u)
		if _, pass, ok := strings.Cut(u, ":"); ok {
			out = append(out, pass)
		}
	}
	for _, m := range urlUserinfo.FindAllString(s, -1) {
		_, rest, _ := strings.Cut(m, "://")
		userinfo(strings.TrimSuffix(rest, "@"))
	}
	words, ok := splitWords(s)
	if !ok {
		for _, f := range strings.Fields(s) {
			words = append(words, cmdWord{text: f})
		}
	}
	prog := ""
	for i := 0; i < len(words); i++ {
		w := words[i].text
		next := func() string {
			if i+1 < len(words) {
				i++
				return words[i].text
			}
			return ""
		}
		if words[i].special && strings.ContainsAny(w, "|;&") && !strings.Contains(w, "://") {
			prog = "" // a new command follows
			continue
		}
		if strings.ContainsAny(w, " \t\n") {
			out = append(out, credentialsIn(w)...) // sh -c 'curl ...'
		}
		if prog == "" {
			prog = path.Base(w)
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		switch {
		case slices.Contains(passwordOptions, name):
			if !hasVal {
				val = next()
			}
			out = append(out, val)
		case slices.Contains(userOptions, name):
			if !hasVal {
				val = next()
			}
			if strings.Contains(val, ":") {
				userinfo(val)
			}
		case (prog == "curl") && strings.HasPrefix(w, "-u") && len(w) > 2 && strings.Contains(w, ":"):
			userinfo(w[2:]) // curl -uuser:password
		case w == "-H" || w == "--header" || name == "--header":
			h := val
			if !hasVal {
				h = next()
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "authorization") {
				out = append(out, strings.TrimSpace(v))
			}
		case (prog == "curl" || prog == "wget") && !strings.HasPrefix(w, "-") && !strings.Contains(w, "://"):
			// A URL without a scheme (curl and wget add http://): user:password@host/path.
			authority, _, _ := strings.Cut(w, "/")
			if at := strings.LastIndexByte(authority, '@'); at > 0 {
				userinfo(authority[:at])
			}
		}
	}
	return out
}
