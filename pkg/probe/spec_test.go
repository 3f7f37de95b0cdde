package probe

import (
	"strings"
	"testing"
	"time"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string // substring of the error; "" means valid
	}{
		{"process", Spec{Name: "p", Kind: KindProcess, Process: "haproxy"}, ""},
		{"process 15 bytes", Spec{Name: "p", Kind: KindProcess, Process: "haproxy-ingress"}, ""},
		{"process 16 bytes", Spec{Name: "p", Kind: KindProcess, Process: "haproxy-ingress-"}, "1..15 bytes"},
		{"process path", Spec{Name: "p", Kind: KindProcess, Process: "/usr/sbin/haproxy"}, "no path"},
		{"executable", Spec{Name: "p", Kind: KindProcess, Process: "haproxy", Executable: "/usr/sbin/haproxy"}, ""},
		{"executable relative", Spec{Name: "p", Kind: KindProcess, Process: "haproxy", Executable: "sbin/haproxy"}, `executable "sbin/haproxy": give the executable's absolute path`},
		{"executable unclean", Spec{Name: "p", Kind: KindProcess, Process: "haproxy", Executable: "/usr/sbin/../sbin/haproxy"}, "no //, . or .. parts"},
		{"executable root", Spec{Name: "p", Kind: KindProcess, Process: "haproxy", Executable: "/"}, "absolute path"},
		{"tcp", Spec{Name: "p", Kind: KindTCP, Address: "127.0.0.1:80"}, ""},
		{"tcp v6", Spec{Name: "p", Kind: KindTCP, Address: "[::1]:80"}, ""},
		{"tcp no port", Spec{Name: "p", Kind: KindTCP, Address: "127.0.0.1"}, "address"},
		{"tcp port 0", Spec{Name: "p", Kind: KindTCP, Address: "127.0.0.1:0"}, "1..65535"},
		{"tcp no host", Spec{Name: "p", Kind: KindTCP, Address: ":80"}, "needs a host"},
		{"http", Spec{Name: "p", Kind: KindHTTP, URL: "http://127.0.0.1:8404/healthz", ExpectedStatus: 204}, ""},
		{"http ftp", Spec{Name: "p", Kind: KindHTTP, URL: "ftp://x/"}, "http or https"},
		{"http no host", Spec{Name: "p", Kind: KindHTTP, URL: "http:///x"}, `url "http:///x": the URL needs a host`},
		{"http bad status", Spec{Name: "p", Kind: KindHTTP, URL: "http://x/", ExpectedStatus: 99}, "expected status 99: set an HTTP status code 100..599"},
		{"http unparsable", Spec{Name: "p", Kind: KindHTTP, URL: "http://[::1"}, "write an absolute http:// or https:// URL"},
		{"https all set", Spec{Name: "p", Kind: KindHTTP, URL: "https://127.0.0.1:6443/readyz", HTTPS: HTTPSOptions{
			CAFile: "/etc/kubernetes/pki/ca.crt", CertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem", KeyFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
			BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", ServerName: "kubernetes.default.svc"}}, ""},
		{"https insecure", Spec{Name: "p", Kind: KindHTTP, URL: "https://127.0.0.1:6443/readyz", HTTPS: HTTPSOptions{InsecureSkipVerify: true}}, ""},
		{"https server name IPv4", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "10.96.0.1"}}, ""},
		{"https server name IPv6", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "fd00::1"}}, ""},
		{"https server name zone", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "fe80::1%eth0"}}, `server name "fe80::1%eth0": give a DNS name or IP address`},
		{"https server name space", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "api server"}}, `server name "api server": give a DNS name or IP address that the server's certificate names`},
		{"https server name label", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "-api.test"}}, "give a DNS name"},
		{"https server name empty label", Spec{Name: "p", Kind: KindHTTP, URL: "https://localhost/", HTTPS: HTTPSOptions{ServerName: "api..test"}}, "give a DNS name"},
		{"https CA relative", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{CAFile: "ca.crt"}}, `CA file "ca.crt": give the file's absolute path`},
		{"https key unclean", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{CertFile: "/a/tls.crt", KeyFile: "/a/../tls.key"}}, `client key file "/a/../tls.key": give the file's absolute path`},
		{"https token root", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{BearerTokenFile: "/"}}, `bearer token file "/": give the file's absolute path`},
		{"https certificate without key", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{CertFile: "/tls.crt"}}, "a client certificate needs its key file and a key its certificate file: set both or neither"},
		{"https key without certificate", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{KeyFile: "/tls.key"}}, "set both or neither"},
		{"https CA and insecure", Spec{Name: "p", Kind: KindHTTP, URL: "https://x/", HTTPS: HTTPSOptions{CAFile: "/ca.crt", InsecureSkipVerify: true}}, "a CA file and InsecureSkipVerify exclude each other"},
		{"http with a CA", Spec{Name: "p", Kind: KindHTTP, URL: "http://127.0.0.1:6443/readyz", HTTPS: HTTPSOptions{CAFile: "/ca.crt"}}, "TLS settings and a bearer token need an https:// URL (a token would travel in clear text): change the URL to https:// or remove them"},
		{"http with a token", Spec{Name: "p", Kind: KindHTTP, URL: "http://127.0.0.1:8080/", HTTPS: HTTPSOptions{BearerTokenFile: "/token"}}, "need an https:// URL"},
		{"http insecure", Spec{Name: "p", Kind: KindHTTP, URL: "http://127.0.0.1:8080/", HTTPS: HTTPSOptions{InsecureSkipVerify: true}}, "need an https:// URL"},
		{"https options on a file probe", Spec{Name: "p", Kind: KindFile, Path: "/x", HTTPS: HTTPSOptions{CAFile: "/ca.crt"}}, `HTTPS is set but the probe is of kind "file"`},
		{"exec", Spec{Name: "p", Kind: KindExec, Command: []string{"/bin/true"}}, ""},
		{"exec relative", Spec{Name: "p", Kind: KindExec, Command: []string{"true"}}, "absolute path"},
		{"exec empty", Spec{Name: "p", Kind: KindExec}, "give the command as an argv list"},
		{"interface", Spec{Name: "p", Kind: KindInterface, Interface: "eth0"}, ""},
		{"interface alias", Spec{Name: "p", Kind: KindInterface, Interface: "eth0:1"}, `interface name "eth0:1": interface names cannot contain '/', ':'`},
		{"interface 15 bytes", Spec{Name: "p", Kind: KindInterface, Interface: "abcdefghijklmno"}, ""},
		{"interface 16 bytes", Spec{Name: "p", Kind: KindInterface, Interface: "abcdefghijklmnop"}, "at most 15 bytes"},
		// The kernel refuses "." and ".." (dev_valid_name), as the CRD and pkg/desired do.
		{"interface dot", Spec{Name: "p", Kind: KindInterface, Interface: "."}, `interface name ".": "." and ".." are not link names`},
		{"interface dot dot", Spec{Name: "p", Kind: KindInterface, Interface: ".."}, `interface name "..": "." and ".." are not link names`},
		{"interface vertical tab", Spec{Name: "p", Kind: KindInterface, Interface: "eth\v0"}, "cannot contain"},
		{"interface NUL", Spec{Name: "p", Kind: KindInterface, Interface: "eth\x000"}, "cannot contain"},
		{"interface no-break space", Spec{Name: "p", Kind: KindInterface, Interface: "eth\u00a00"}, "cannot contain"},
		{"file", Spec{Name: "p", Kind: KindFile, Path: "/run/ok"}, ""},
		{"file relative", Spec{Name: "p", Kind: KindFile, Path: "run/ok"}, `path "run/ok": give an absolute path`},
		{"no name", Spec{Kind: KindFile, Path: "/x"}, "name is empty"},
		{"unknown kind", Spec{Name: "p", Kind: "ping"}, `unknown kind "ping"`},
		{"field of another kind", Spec{Name: "p", Kind: KindFile, Path: "/x", URL: "http://x/"}, `URL is set but the probe is of kind "file"`},
		{"timeout above interval", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: time.Second, Timeout: 2 * time.Second}, "at most the interval"},
		{"timeout above default interval", Spec{Name: "p", Kind: KindFile, Path: "/x", Timeout: 2 * time.Second}, "at most the interval (1s)"},
		{"negative interval", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: -1}, "interval"},
		// An interval of 1ns kept a core busy.
		{"interval 1ns", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 1}, "interval 1ns: set an interval of 10ms..1h, e.g. 1s (a probe checks at most 100 times a second)"},
		{"interval 9ms", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 9 * time.Millisecond}, "interval 9ms: set an interval of 10ms..1h"},
		{"interval 10ms", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 10 * time.Millisecond}, ""},
		{"interval 1h", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: time.Hour}, ""},
		{"interval above 1h", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: time.Hour + 1}, "interval 1h0m0.000000001s: set an interval of 10ms..1h"},
		{"timeout 1ns", Spec{Name: "p", Kind: KindFile, Path: "/x", Timeout: 1}, "timeout 1ns: set a timeout of at least 1ms"},
		{"timeout 999us", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 10 * time.Millisecond, Timeout: 999 * time.Microsecond}, "timeout 999µs: set a timeout of at least 1ms"},
		{"timeout 1ms", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 10 * time.Millisecond, Timeout: time.Millisecond}, ""},
		{"timeout the interval", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond}, ""},
		{"timeout above a 10ms interval", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 10 * time.Millisecond, Timeout: 11 * time.Millisecond}, "at most the interval (10ms)"},
		{"fall", Spec{Name: "p", Kind: KindFile, Path: "/x", Fall: 256}, "fall 256"},
		{"rise", Spec{Name: "p", Kind: KindFile, Path: "/x", Rise: -1}, "rise -1: set rise to 1..255 consecutive successes"},
		{"fall 255", Spec{Name: "p", Kind: KindFile, Path: "/x", Fall: 255}, ""},
		{"fall -1", Spec{Name: "p", Kind: KindFile, Path: "/x", Fall: -1}, "fall -1: set fall to 1..255 consecutive failures"},
		{"weight 253", Spec{Name: "p", Kind: KindFile, Path: "/x", Weight: 253}, ""},
		{"weight", Spec{Name: "p", Kind: KindFile, Path: "/x", Weight: -254}, "weight -254: set weight to -253..253"},
		{"all set", Spec{Name: "p", Kind: KindFile, Path: "/x", Interval: 2 * time.Second, Timeout: time.Second, Fall: 3, Rise: 2, Weight: -20}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSpecDefaults(t *testing.T) {
	s := Spec{Name: "p", Kind: KindFile, Path: "/x"}
	if s.interval() != time.Second || s.timeout() != time.Second || s.fall() != 1 || s.rise() != 1 {
		t.Errorf("defaults: interval %v timeout %v fall %d rise %d, want 1s 1s 1 1", s.interval(), s.timeout(), s.fall(), s.rise())
	}
	s.Interval = 3 * time.Second
	if s.timeout() != 3*time.Second {
		t.Errorf("timeout %v, want the interval 3s", s.timeout())
	}
}

func TestNewRejects(t *testing.T) {
	_, err := New([]Spec{
		{Name: "a", Kind: KindFile, Path: "/x"},
		{Name: "a", Kind: KindFile, Path: "/y"},
		{Name: "b", Kind: KindFile},
	}, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), `"a": the name is used twice`) || !strings.Contains(err.Error(), `probe "b"`) {
		t.Fatalf("New() = %v, want errors for the duplicate name and the path", err)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour:                    "1h",
		time.Minute:                  "1m",
		90 * time.Minute:             "1h30m",
		time.Hour + time.Second:      "1h0m1s",
		10 * time.Second:             "10s",
		10 * time.Millisecond:        "10ms",
		999 * time.Microsecond:       "999µs",
		2*time.Hour + 10*time.Minute: "2h10m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
