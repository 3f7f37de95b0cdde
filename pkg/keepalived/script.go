package keepalived

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// check is what a script turns into: exactly one of the probe kinds, an optional timeout the
// command itself imposed (curl -m, wget -T, nc -w), and notes for warnings.
type check struct {
	process *v1alpha1.ProcessProbe
	tcp     *v1alpha1.TCPProbe
	http    *v1alpha1.HTTPProbe
	exec    *v1alpha1.ExecProbe
	file    *v1alpha1.FileProbe
	timeout time.Duration
	notes   []string
}

// maxProcessName is the length of a process name as the kernel keeps it (comm).
const maxProcessName = probe.MaxProcessName

// Characters that only a shell gives a meaning to. keepalived 2.x execs scripts directly, so
// it passes them to the program unchanged.
const shellChars = "|&;<>()$`"

// classifyScript maps a vrrp_script command to a probe. Where the meaning is clear it is a
// typed probe (process, http, tcp, file); otherwise an exec probe.
func classifyScript(cmd string) check {
	argv, ok := splitCommand(cmd)
	if !ok || len(argv) == 0 {
		return shellExec(cmd, "its quoting is unbalanced")
	}
	if isShell(argv[0]) && len(argv) >= 3 && argv[1] == "-c" {
		inner := argv[2]
		if simple, dropped, ok := stripRedirections(inner); ok {
			if iargv, ok := splitCommand(simple); ok && len(iargv) > 0 && len(argv) == 3 {
				if c, ok := typed(iargv); ok {
					c.notes = append([]string{fmt.Sprintf("the %s -c wrapper%s is not needed for a %s probe and was dropped", path.Base(argv[0]), dropped, c.kind())}, c.notes...)
					return c
				}
			}
		}
		return execOf(argv)
	}
	if hasShellSyntax(cmd) {
		simple, dropped, ok := stripRedirections(cmd)
		if ok {
			if sargv, ok := splitCommand(simple); ok && len(sargv) > 0 {
				if c, ok := typed(sargv); ok {
					c.notes = append([]string{fmt.Sprintf("the output redirection%s does not change the result and was dropped", dropped)}, c.notes...)
					return c
				}
			}
		}
		return shellExec(cmd, "it uses shell syntax ("+usedShellChars(cmd)+")")
	}
	if c, ok := typed(argv); ok {
		return c
	}
	return execOf(argv)
}

func (c check) kind() string {
	switch {
	case c.process != nil:
		return "process"
	case c.tcp != nil:
		return "tcp"
	case c.http != nil:
		return "http"
	case c.file != nil:
		return "file"
	}
	return "exec"
}

func isShell(p string) bool {
	switch path.Base(p) {
	case "sh", "bash", "dash", "ash", "zsh", "ksh":
		return true
	}
	return false
}

func hasShellSyntax(s string) bool {
	words, _ := splitWords(s)
	for _, w := range words {
		if w.special {
			return true
		}
	}
	return false
}

func usedShellChars(s string) string {
	words, _ := splitWords(s)
	var b strings.Builder
	for _, c := range shellChars {
		for _, w := range words {
			if w.special && strings.ContainsRune(w.text, c) {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				b.WriteRune(c)
				break
			}
		}
	}
	return b.String()
}

// stripRedirections removes redirections of output to /dev/null ("> /dev/null", "2>&1",
// "&>/dev/null", ...), which never change a command's exit status. ok is false when other
// shell syntax remains.
func stripRedirections(s string) (rest, dropped string, ok bool) {
	words, good := splitWords(s)
	if !good {
		return "", "", false
	}
	var keep, drop []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w.special {
			switch w.text {
			case ">/dev/null", "1>/dev/null", "2>/dev/null", "&>/dev/null", ">&/dev/null", "2>&1":
				drop = append(drop, w.text)
				continue
			case ">", "1>", "2>", "&>", ">&":
				if i+1 < len(words) && words[i+1].text == "/dev/null" {
					drop = append(drop, w.text+" /dev/null")
					i++
					continue
				}
			}
			return "", "", false
		}
		keep = append(keep, w.text)
	}
	if len(drop) > 0 {
		dropped = " (" + strings.Join(drop, " ") + ")"
	}
	// Re-quote so that splitCommand gives the same words back.
	q := make([]string, len(keep))
	for i, a := range keep {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " "), dropped, true
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"\\"+shellChars) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

const execNote = "exec probes run only when the agent enables them (they are off by default, since whoever writes a VirtualIP would run commands as root on every node), and the command runs inside the agent's container, so it must exist there"

func shellExec(cmd, why string) check {
	return check{
		exec: &v1alpha1.ExecProbe{Command: []string{"/bin/sh", "-c", cmd}},
		notes: []string{"converted to an exec probe through /bin/sh -c because " + why +
			"; keepalived 2.x runs scripts without a shell and passed such characters to the program unchanged, so check that the shell's reading is what was meant; " + execNote},
	}
}

func execOf(argv []string) check {
	c := check{}
	cmd := append([]string(nil), argv...)
	switch {
	case strings.HasPrefix(cmd[0], "/"):
	case !strings.Contains(cmd[0], "/"):
		c.notes = append(c.notes, fmt.Sprintf("%q has no directory: keepalived looked it up in its PATH; the exec probe needs an absolute path and uses /usr/bin/%s, check it", cmd[0], cmd[0]))
		cmd[0] = "/usr/bin/" + cmd[0]
	default:
		c.notes = append(c.notes, fmt.Sprintf("%q is a relative path; the exec probe needs an absolute path and uses %s, check it", cmd[0], path.Join("/", cmd[0])))
		cmd[0] = path.Join("/", cmd[0])
	}
	c.exec = &v1alpha1.ExecProbe{Command: cmd}
	c.notes = append(c.notes, "converted to an exec probe: "+execNote)
	return c
}

// typed recognises the common checks.
func typed(argv []string) (check, bool) {
	switch path.Base(argv[0]) {
	case "pgrep":
		return pgrep(argv[1:])
	case "pidof":
		return pidof(argv[1:])
	case "killall":
		return killall(argv[1:])
	case "curl":
		return curl(argv[1:])
	case "wget":
		return wget(argv[1:])
	case "nc", "ncat", "netcat":
		return netcat(argv[1:])
	case "test":
		return testFile(argv[1:])
	case "[":
		if len(argv) > 1 && argv[len(argv)-1] == "]" {
			return testFile(argv[1 : len(argv)-1])
		}
	}
	return check{}, false
}

// plainName accepts names that match the same processes as a regular expression and as an
// exact name ('.' matches itself too).
func plainName(s string) bool {
	return s != "" && len(s) <= maxProcessName && !strings.ContainsAny(s, "^$*+?()[]{}|\\/ ")
}

func processCheck(name string, notes ...string) (check, bool) {
	return check{process: &v1alpha1.ProcessProbe{Name: name}, notes: notes}, true
}

func pgrep(args []string) (check, bool) {
	exact := false
	var names []string
	for _, a := range args {
		switch {
		case a == "-x" || a == "--exact":
			exact = true
		case strings.HasPrefix(a, "-"):
			return check{}, false // -f, -u, -P, ... select by more than the name
		default:
			names = append(names, a)
		}
	}
	if len(names) != 1 || !plainName(names[0]) {
		return check{}, false
	}
	if !exact {
		return processCheck(names[0], fmt.Sprintf("pgrep %s matches every process whose name contains %q; the process probe matches the exact name (as pgrep -x)", names[0], names[0]))
	}
	return processCheck(names[0])
}

func pidof(args []string) (check, bool) {
	var names []string
	for _, a := range args {
		switch a {
		case "-s", "-x", "-q", "-c", "-n":
		default:
			if strings.HasPrefix(a, "-") {
				return check{}, false
			}
			names = append(names, a)
		}
	}
	if len(names) != 1 || !plainName(names[0]) {
		return check{}, false
	}
	return processCheck(names[0])
}

func killall(args []string) (check, bool) {
	signal0 := false
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-0" || a == "-s0" || a == "--signal=0":
			signal0 = true
		case (a == "-s" || a == "--signal") && i+1 < len(args):
			i++
			if args[i] != "0" {
				return check{}, false
			}
			signal0 = true
		case a == "-q" || a == "--quiet" || a == "-e" || a == "--exact" || a == "-w" || a == "--wait":
		case strings.HasPrefix(a, "-"):
			return check{}, false
		default:
			names = append(names, a)
		}
	}
	if !signal0 || len(names) != 1 || !plainName(names[0]) {
		return check{}, false
	}
	return processCheck(names[0])
}

// flagSpec lists the options of a command that do not change what a check means: noArg
// flags and flags taking one value. timeout names the flags whose value is the command's own
// timeout in seconds.
type flagSpec struct {
	noArg   map[string]string // flag -> note ("" for none)
	withArg map[string]string
	timeout map[string]bool
}

// parseFlags splits args into values of known flags and positional arguments; ok is false on
// any unknown flag.
func (s flagSpec) parse(args []string) (flags map[string]string, pos []string, notes []string, ok bool) {
	flags = map[string]string{}
	note := func(n string) {
		if n != "" {
			notes = append(notes, n)
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			return flags, pos, notes, true
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a, "=")
			if n, known := s.noArg[name]; known && !hasVal {
				flags[name] = ""
				note(n)
				continue
			}
			n, known := s.withArg[name]
			if !known {
				return nil, nil, nil, false
			}
			if !hasVal {
				if i+1 >= len(args) {
					return nil, nil, nil, false
				}
				i++
				val = args[i]
			}
			flags[name] = val
			note(n)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// A cluster of short flags; the last may take a value ("-sfo /dev/null").
			for j := 1; j < len(a); j++ {
				f := "-" + a[j:j+1]
				if n, known := s.noArg[f]; known {
					flags[f] = ""
					note(n)
					continue
				}
				n, known := s.withArg[f]
				if !known {
					return nil, nil, nil, false
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, nil, nil, false
					}
					i++
					val = args[i]
				}
				flags[f] = val
				note(n)
				break
			}
		default:
			pos = append(pos, a)
		}
	}
	return flags, pos, notes, true
}

func (s flagSpec) timeoutOf(flags map[string]string) (time.Duration, bool) {
	for f, v := range flags {
		if s.timeout[f] {
			d, ok := parseSeconds(v)
			if !ok || d <= 0 {
				return 0, false
			}
			return d, true
		}
	}
	return 0, true
}

const insecureNote = "the command skipped TLS certificate checks; check the http probe's TLS behaviour against the endpoint"

var curlFlags = flagSpec{
	noArg: map[string]string{
		"-s": "", "--silent": "", "-S": "", "--show-error": "", "-f": "", "--fail": "",
		"--fail-with-body": "", "-q": "", "-L": "", "--location": "", "-v": "", "--verbose": "",
		"-k": insecureNote, "--insecure": insecureNote, "-4": "", "-6": "", "--compressed": "",
		"-I": "curl -I sends HEAD; the http probe sends GET", "--head": "curl -I sends HEAD; the http probe sends GET",
		"-N": "", "--no-buffer": "",
	},
	withArg: map[string]string{
		"-o": "", "--output": "", "-m": "", "--max-time": "", "--connect-timeout": "",
		"-w": "", "--write-out": "", "-A": "", "--user-agent": "",
		"--retry": "curl --retry retried the request; the http probe tries once per interval (use fall)",
	},
	timeout: map[string]bool{"-m": true, "--max-time": true},
}

func curl(args []string) (check, bool) {
	flags, pos, notes, ok := curlFlags.parse(args)
	if !ok || len(pos) != 1 {
		return check{}, false
	}
	u, unotes, ok := httpURL(pos[0])
	if !ok {
		return check{}, false
	}
	notes = append(notes, unotes...)
	_, fail := flags["-f"]
	if _, ok := flags["--fail"]; ok {
		fail = true
	}
	if _, ok := flags["--fail-with-body"]; ok {
		fail = true
	}
	if !fail {
		notes = append(notes, "curl without --fail succeeds on any HTTP response, even an error status; the http probe succeeds only on 2xx and 3xx")
	}
	t, ok := curlFlags.timeoutOf(flags)
	if !ok {
		return check{}, false
	}
	return check{http: &v1alpha1.HTTPProbe{URL: u}, timeout: t, notes: notes}, true
}

var wgetFlags = flagSpec{
	noArg: map[string]string{
		"-q": "", "--quiet": "", "--spider": "", "-nv": "", "--no-verbose": "", "-S": "",
		"--server-response": "", "--no-check-certificate": insecureNote, "-4": "", "-6": "",
		"--inet4-only": "", "--inet6-only": "",
	},
	withArg: map[string]string{
		"-O": "", "--output-document": "", "-o": "", "--output-file": "", "-T": "", "--timeout": "",
		"-U": "", "--user-agent": "",
		"-t":      "wget retried the request (--tries); the http probe tries once per interval (use fall)",
		"--tries": "wget retried the request (--tries); the http probe tries once per interval (use fall)",
	},
	timeout: map[string]bool{"-T": true, "--timeout": true},
}

func wget(args []string) (check, bool) {
	// "-nv" is one flag, not -n -v.
	for i, a := range args {
		if a == "-nv" {
			args = append(append([]string(nil), args[:i]...), append([]string{"--no-verbose"}, args[i+1:]...)...)
		}
	}
	flags, pos, notes, ok := wgetFlags.parse(args)
	if !ok || len(pos) != 1 {
		return check{}, false
	}
	u, unotes, ok := httpURL(pos[0])
	if !ok {
		return check{}, false
	}
	t, ok := wgetFlags.timeoutOf(flags)
	if !ok {
		return check{}, false
	}
	return check{http: &v1alpha1.HTTPProbe{URL: u}, timeout: t, notes: append(notes, unotes...)}, true
}

func httpURL(s string) (string, []string, bool) {
	var notes []string
	if !strings.Contains(s, "://") {
		notes = append(notes, fmt.Sprintf("%q has no scheme; curl and wget default to http, so the probe uses http://%s", s, s))
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || len(s) > v1alpha1.MaxURLLength {
		return "", nil, false
	}
	return s, notes, true
}

func netcat(args []string) (check, bool) {
	zero := false
	var timeout time.Duration
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || len(a) == 1 {
			pos = append(pos, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'z':
				zero = true
			case 'v', 'n', '4', '6':
			case 'w':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return check{}, false
					}
					i++
					val = args[i]
				}
				d, ok := parseSeconds(val)
				if !ok || d <= 0 {
					return check{}, false
				}
				timeout = d
				j = len(a)
			default:
				return check{}, false // -u (UDP), -s, -p, ...
			}
		}
	}
	if !zero || len(pos) != 2 {
		return check{}, false
	}
	port, err := strconv.Atoi(pos[1])
	if err != nil || port < 1 || port > 65535 || !validHost(pos[0]) {
		return check{}, false
	}
	return check{tcp: &v1alpha1.TCPProbe{Address: net.JoinHostPort(pos[0], pos[1])}, timeout: timeout}, true
}

// validHost accepts a host name or an IP address, as nc takes it.
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "[]/ \t%@") {
		return false
	}
	if strings.Contains(h, ":") {
		_, err := netip.ParseAddr(h)
		return err == nil
	}
	return true
}

func testFile(args []string) (check, bool) {
	if len(args) != 2 || args[1] == "" || !strings.HasPrefix(args[1], "/") {
		return check{}, false
	}
	switch args[0] {
	case "-e":
		return check{file: &v1alpha1.FileProbe{Path: args[1]}}, true
	case "-f", "-d", "-r", "-s":
		return check{file: &v1alpha1.FileProbe{Path: args[1]},
			notes: []string{fmt.Sprintf("test %s also checks the kind or size of the path; the file probe only checks that it exists", args[0])}}, true
	}
	return check{}, false
}
