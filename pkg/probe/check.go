package probe

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The rules of a probe, one home each: its target, timing, fall, rise and weight. Spec.Validate
// applies them to a Spec; pkg/desired applies them to a VirtualIP's spec.probes, naming the field
// (spec.probes[0].process.name) and giving the error's text as the message; pkg/desired and
// pkg/keepalived check every interface name with CheckInterfaceName. An error's text says what
// to write instead, so that it reads well after a field path or a value. The CRD's markers
// repeat the rules as CEL (docs/design.md §1.1); the API's string and list bounds
// (api/v1alpha1/limits.go) are checked by pkg/desired alone.

// CheckProcessName reports why name cannot be a process probe's name: the name the kernel keeps
// (comm) is at most MaxProcessName bytes and has no path.
func CheckProcessName(name string) error {
	if name == "" || len(name) > MaxProcessName || strings.ContainsRune(name, '/') {
		return fmt.Errorf("give the process name as the kernel keeps it (as pgrep -x): 1..%d bytes, no path", MaxProcessName)
	}
	return nil
}

// CheckExecutable reports why p cannot be a process probe's executable: it is compared with
// /proc/PID/exe, which is absolute and clean.
func CheckExecutable(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p {
		return errors.New("give the executable's absolute path as /proc/PID/exe shows it (no //, . or .. parts, no trailing /), e.g. /usr/sbin/haproxy")
	}
	return nil
}

// CheckAddress reports why s cannot be a tcp probe's host:port.
func CheckAddress(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("write host:port, e.g. 127.0.0.1:8404 or [::1]:8404")
	}
	if host == "" {
		return errors.New("the address needs a host, e.g. 127.0.0.1:8404")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("the port must be a number 1..65535")
	}
	return nil
}

// CheckURL reports why s cannot be an http probe's URL: absolute, http or https, with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("write an absolute http:// or https:// URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("the URL's scheme must be http or https")
	case u.Hostname() == "":
		return errors.New("the URL needs a host, e.g. http://127.0.0.1:8080/healthz")
	}
	return nil
}

// CheckExpectedStatus reports why code cannot be an http probe's expected status. A Spec's 0
// (any 2xx or 3xx) is not a status: the caller checks a code only when one is given.
func CheckExpectedStatus(code int) error {
	if code < 100 || code > 599 {
		return errors.New("set an HTTP status code 100..599, or omit it for any 2xx or 3xx")
	}
	return nil
}

// CheckHTTPS reports what is wrong with the combination of an http probe's URL and its HTTPS
// settings: they need an https:// URL (a bearer token over http:// would travel in clear
// text), a client certificate and its key come together, and a CA file and
// InsecureSkipVerify exclude each other. It checks no single setting: CheckCredentialFile
// and CheckServerName do, and CheckURL the URL (an unparsable URL is left to it).
func CheckHTTPS(rawURL string, o HTTPSOptions) error {
	var errs []error
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "https" && o != (HTTPSOptions{}) {
		errs = append(errs, errors.New("TLS settings and a bearer token need an https:// URL (a token would travel in clear text): change the URL to https:// or remove them"))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("a client certificate needs its key file and a key its certificate file: set both or neither"))
	}
	if o.CAFile != "" && o.InsecureSkipVerify {
		errs = append(errs, errors.New("a CA file and InsecureSkipVerify exclude each other: keep the CA file, which verifies the server, and remove InsecureSkipVerify"))
	}
	return errors.Join(errs...)
}

// CheckCredentialFile reports why p cannot be the path of an http probe's CA, client
// certificate, key or bearer token file: it is absolute and clean.
func CheckCredentialFile(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p {
		return errors.New("give the file's absolute path (no //, . or .. parts, no trailing /), e.g. /etc/kubernetes/pki/ca.crt")
	}
	return nil
}

// CheckServerName reports why name cannot be the server name an https probe sends (SNI) and
// verifies the server's certificate against: a DNS name, or an IP address without a zone.
func CheckServerName(name string) error {
	if a, err := netip.ParseAddr(name); err == nil && a.Zone() == "" {
		return nil
	}
	if !isDNSName(name) {
		return errors.New("give a DNS name or IP address that the server's certificate names, e.g. kubernetes.default.svc or 10.96.0.1")
	}
	return nil
}

// isDNSName reports whether s is a DNS name of at most 253 bytes whose labels have 1..63
// letters, digits, '-' or '_', not starting or ending with '-'.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := range len(l) {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// CheckCommand reports why argv cannot be an exec probe's command: it runs without a shell and
// without a PATH lookup, so argv[0] is an absolute path.
func CheckCommand(argv []string) error {
	switch {
	case len(argv) == 0:
		return errors.New("give the command as an argv list, e.g. [/usr/bin/check, --quiet]")
	case !strings.HasPrefix(argv[0], "/"):
		return errors.New("give the program's absolute path first (there is no shell and no PATH lookup), e.g. /usr/bin/pgrep")
	}
	return nil
}

// CheckPath reports why p cannot be a file probe's path.
func CheckPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("give an absolute path, e.g. /run/haproxy.ok")
	}
	return nil
}

// CheckInterfaceName reports why name cannot be a Linux link name, as the kernel's
// dev_valid_name refuses it: empty, longer than vrrp.MaxInterfaceName bytes, "." or "..", or
// with '/', ':', NUL or white space. It is the rule of every interface name: a VirtualIP's
// spec.interface and nodes[].interface, an interface probe's, and keepalived's interface,
// dev and track_interface. White space is any Unicode space (unicode.IsSpace), a little more
// than the kernel's isspace refuses.
func CheckInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("name the interface, e.g. eth0")
	case len(name) > vrrp.MaxInterfaceName:
		return fmt.Errorf("interface names have at most %d bytes", vrrp.MaxInterfaceName)
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not link names: use the name of a network interface, e.g. eth0`)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) }):
		return errors.New("interface names cannot contain '/', ':' or whitespace; use the link's name, e.g. eth0 (not an alias like eth0:1)")
	}
	return nil
}

// CheckInterval reports why d cannot be a probe's interval: MinInterval..MaxInterval. A Spec's
// 0 (the default) is not an interval: the caller checks one only when it is given.
func CheckInterval(d time.Duration) error {
	if d < MinInterval || d > MaxInterval {
		return fmt.Errorf("set an interval of %s..%s, e.g. 1s (a probe checks at most %d times a second)",
			shortDuration(MinInterval), shortDuration(MaxInterval), time.Second/MinInterval)
	}
	return nil
}

// CheckTimeout reports why t cannot be the timeout of a probe with the given interval: at least
// MinTimeout, at most the interval.
func CheckTimeout(t, interval time.Duration) error {
	if t < MinTimeout || t > interval {
		return fmt.Errorf("set a timeout of at least %s, so that a check can complete, and at most the interval (%s), so that checks never overlap",
			shortDuration(MinTimeout), shortDuration(interval))
	}
	return nil
}

// CheckFall reports why n cannot be a probe's fall: 1..MaxCount.
func CheckFall(n int) error {
	if n < 1 || n > MaxCount {
		return fmt.Errorf("set fall to 1..%d consecutive failures", MaxCount)
	}
	return nil
}

// CheckRise reports why n cannot be a probe's rise: 1..MaxCount.
func CheckRise(n int) error {
	if n < 1 || n > MaxCount {
		return fmt.Errorf("set rise to 1..%d consecutive successes", MaxCount)
	}
	return nil
}

// CheckWeight reports why w cannot be a probe's weight: -MaxWeight..MaxWeight.
func CheckWeight(w int) error {
	if w < -MaxWeight || w > MaxWeight {
		return fmt.Errorf("set weight to -%d..%d (0: FAULT while failing; negative: added while failing; positive: added while succeeding)",
			MaxWeight, MaxWeight)
	}
	return nil
}

// shortDuration writes d as a person would: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ShownProgram is what messages and logs may show of a command's first element (an exec
// probe's or a notify command's): the text before its first white space, with " ..." when
// there was more. A whole command line written as the first element ("/usr/bin/curl -u
// user:password ...", as keepalived's scripts are written, and which the CRD's rule takes for
// an absolute path) would otherwise show its arguments, which may carry credentials.
func ShownProgram(argv0 string) string {
	if i := strings.IndexFunc(argv0, unicode.IsSpace); i >= 0 {
		return argv0[:i] + " ..."
	}
	return argv0
}

// ShownExecError is what messages and logs may show of the error of running a command: a
// failed start names the program as ShownProgram does (fork/exec's error quotes the whole
// first element).
func ShownExecError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + ShownProgram(pe.Path) + ": " + pe.Err.Error()
	}
	return err.Error()
}
