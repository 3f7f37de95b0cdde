package probe

import (
	"errors"
	"fmt"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Kind is what a probe checks.
type Kind string

// The kinds of probe.
const (
	// KindProcess succeeds while a process of the given name runs (as pgrep -x; zombies are
	// dead). It rescans /proc every interval and holds a pidfd of every process it found, so
	// that an exit is an event that the Runner checks at once (see Runner).
	KindProcess Kind = "process"
	// KindTCP succeeds when a TCP connection to the address opens.
	KindTCP Kind = "tcp"
	// KindHTTP succeeds when a GET returns an expected status and a complete, small body.
	KindHTTP Kind = "http"
	// KindExec succeeds when the command exits 0. It runs only when Options.ExecEnabled.
	KindExec Kind = "exec"
	// KindInterface succeeds while the link is administratively up and has carrier.
	KindInterface Kind = "interface"
	// KindFile succeeds while the path exists.
	KindFile Kind = "file"
)

// Defaults and limits of a Spec. They are the one home of these bounds: pkg/desired enforces
// them on a VirtualIP's probes, and its tests check the CRD's markers against them.
const (
	DefaultInterval = time.Second
	MaxInterval     = time.Hour
	MaxCount        = 255 // fall and rise
	// MaxWeight keeps the priority plus one weight inside 1..254 from any base priority a
	// non-owner can have; the engine clamps the sum of several (docs/design.md §6.3).
	MaxWeight = vrrp.MaxBackupPriority - vrrp.MinPriority
	// MaxProcessName is the longest process name the kernel keeps (TASK_COMM_LEN - 1): a
	// process started as "haproxy-ingress-controller" is named "haproxy-ingress".
	MaxProcessName = 15
	// MaxBodyBytes is the largest HTTP response body a probe reads; a longer body fails the
	// probe, so that a server streaming without end cannot hold it.
	MaxBodyBytes = 64 << 10
	// MinInterval bounds how often a probe checks. keepalived's vrrp_script interval counts
	// whole seconds; probes here go below a second so that a failure is seen within an
	// advertisement interval, whose shortest is 10ms (one VRRPv3 centisecond, RFC 5798
	// §5.2.7). Checking more often costs a check each time (a connection, an exec, a /proc
	// scan) to see a failure a few milliseconds sooner, against a failover that takes tens of
	// milliseconds at best; an interval of 1ns kept a core busy. A process's death is an
	// event (pidfd), seen at once whatever the interval.
	MinInterval = 10 * time.Millisecond
	// MinTimeout is the shortest timeout of a check. Below a millisecond a check races the
	// scheduler: a fork and exec, or a connection on a busy node, takes longer, and the probe
	// would fail from load rather than from the service.
	MinTimeout = time.Millisecond
)

// TokenFilesDisabledReason is the failure reason of every https probe with a bearer token file
// on an agent that does not enable them (Options.TokenFilesEnabled).
const TokenFilesDisabledReason = "bearer token files are disabled on this agent (enable with --enable-probe-token-files / chart value probes.tokenFiles.enabled)"

// ExecDisabledReason is the failure reason of every exec probe on an agent that does not enable
// them: whoever may create a VirtualIP would otherwise run commands as root on every node.
const ExecDisabledReason = "exec probes are disabled on this agent (enable with --enable-exec-probes / chart value probes.exec.enabled)"

// Spec is one probe. Exactly the fields of its Kind are set; zero Interval, Timeout, Fall and
// Rise take their defaults (1s, the interval, 1, 1).
type Spec struct {
	// Name identifies the probe in results, health maps and status; unique per Runner.
	Name string
	// Kind selects the check and which of the following fields it uses.
	Kind Kind

	// Process is the process name of a KindProcess probe, compared exactly with the kernel's
	// comm (/proc/<pid>/comm), so at most MaxProcessName bytes.
	Process string
	// Executable, if set, is the program a KindProcess probe's process must run: compared
	// with the kernel's /proc/<pid>/exe (absolute, symbolic links resolved).
	Executable string
	// Address is the host:port of a KindTCP probe.
	Address string
	// URL is the http:// or https:// URL of a KindHTTP probe.
	URL string
	// ExpectedStatus is the status that means healthy for a KindHTTP probe; 0 means any 2xx or
	// 3xx. Redirects are not followed: a 3xx is judged by its own status.
	ExpectedStatus int
	// HTTPS holds the TLS settings and bearer token of a KindHTTP probe with an https:// URL;
	// Validate refuses them with an http:// URL. Its zero value verifies the server against
	// the system's roots and sends no credentials.
	HTTPS HTTPSOptions
	// Command is the argv of a KindExec probe; Command[0] is an absolute path. It runs without
	// a shell and with an empty environment.
	Command []string
	// Interface is the link name of a KindInterface probe.
	Interface string
	// Path is the absolute path of a KindFile probe.
	Path string

	// Interval between the starts of two checks, MinInterval..MaxInterval (default 1s).
	Interval time.Duration
	// Timeout of one check, MinTimeout..Interval (default Interval).
	Timeout time.Duration
	// Fall is how many consecutive failures make a healthy probe unhealthy (default 1).
	Fall int
	// Rise is how many consecutive successes make an unhealthy probe healthy (default 1).
	Rise int
	// Weight, as keepalived: 0 puts the node in FAULT while the probe fails; a negative weight
	// is added to the priority while it fails; a positive weight is added while it succeeds.
	Weight int
}

// Validate reports everything wrong with s, joined.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if s.Name == "" {
		bad("name is empty")
	}
	type field struct {
		name string
		set  bool
		kind Kind
	}
	fields := []field{
		{"Process", s.Process != "", KindProcess},
		{"Executable", s.Executable != "", KindProcess},
		{"Address", s.Address != "", KindTCP},
		{"URL", s.URL != "", KindHTTP},
		{"ExpectedStatus", s.ExpectedStatus != 0, KindHTTP},
		{"HTTPS", s.HTTPS != HTTPSOptions{}, KindHTTP},
		{"Command", len(s.Command) > 0, KindExec},
		{"Interface", s.Interface != "", KindInterface},
		{"Path", s.Path != "", KindFile},
	}
	for _, f := range fields {
		if f.set && f.kind != s.Kind {
			bad("%s is set but the probe is of kind %q", f.name, s.Kind)
		}
	}

	// check adds err, if any, after what it is about: `interval 1ns: set an interval of ...`.
	check := func(err error, format string, a ...any) {
		if err != nil {
			bad("%s: %w", fmt.Sprintf(format, a...), err)
		}
	}
	switch s.Kind {
	case KindProcess:
		check(CheckProcessName(s.Process), "process name %q", s.Process)
		if s.Executable != "" {
			check(CheckExecutable(s.Executable), "executable %q", s.Executable)
		}
	case KindTCP:
		check(CheckAddress(s.Address), "address %q", s.Address)
	case KindHTTP:
		check(CheckURL(s.URL), "url %q", s.URL)
		if s.ExpectedStatus != 0 {
			check(CheckExpectedStatus(s.ExpectedStatus), "expected status %d", s.ExpectedStatus)
		}
		if s.HTTPS != (HTTPSOptions{}) {
			errs = append(errs, s.HTTPS.validate(s.URL)...)
		}
	case KindExec:
		check(CheckCommand(s.Command), "command %q", s.Command)
	case KindInterface:
		check(CheckInterfaceName(s.Interface), "interface name %q", s.Interface)
	case KindFile:
		check(CheckPath(s.Path), "path %q", s.Path)
	default:
		bad("unknown kind %q", s.Kind)
	}

	// Zero Interval, Timeout, Fall and Rise take their defaults.
	if s.Interval != 0 {
		check(CheckInterval(s.Interval), "interval %s", s.Interval)
	}
	if s.Timeout != 0 {
		check(CheckTimeout(s.Timeout, s.interval()), "timeout %s", s.Timeout)
	}
	if s.Fall != 0 {
		check(CheckFall(s.Fall), "fall %d", s.Fall)
	}
	if s.Rise != 0 {
		check(CheckRise(s.Rise), "rise %d", s.Rise)
	}
	check(CheckWeight(s.Weight), "weight %d", s.Weight)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("probe %q: %w", s.Name, err)
	}
	return nil
}

func (s *Spec) interval() time.Duration {
	if s.Interval <= 0 {
		return DefaultInterval
	}
	return s.Interval
}

func (s *Spec) timeout() time.Duration {
	if s.Timeout <= 0 {
		return s.interval()
	}
	return s.Timeout
}

func (s *Spec) fall() int { return max(s.Fall, 1) }
func (s *Spec) rise() int { return max(s.Rise, 1) }
