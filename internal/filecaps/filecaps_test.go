package filecaps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// The test binary plays three roles, chosen by roleEnv: the test; the "runtime", which sets
// up a container process's credentials and executes the agent; the "agent", which reports
// what it may do.
const (
	roleEnv      = "KUBE_VRRP_FILECAPS_ROLE"
	boundingEnv  = "KUBE_VRRP_FILECAPS_BOUNDING"  // capability numbers kept in the bounding set
	permittedEnv = "KUBE_VRRP_FILECAPS_PERMITTED" // the permitted (and effective) set before exec
	nnpEnv       = "KUBE_VRRP_FILECAPS_NNP"       // "1": no_new_privs (allowPrivilegeEscalation: false)
	execEnv      = "KUBE_VRRP_FILECAPS_EXEC"      // the agent binary
)

const agentID = AgentID

const (
	capNetAdmin = unix.CAP_NET_ADMIN
	capNetRaw   = unix.CAP_NET_RAW
	bothCaps    = 1<<capNetAdmin | 1<<capNetRaw
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "runtime":
		containerRuntime()
	case "agent":
		agent()
	}
	os.Exit(m.Run())
}

// report is what the agent role could do.
type report struct {
	ExecError    string `json:",omitempty"` // the runtime's execve failed
	UID          int
	CapEff       uint64
	CapPrm       uint64
	CapBnd       uint64
	CapAmb       uint64
	NoNewPrivs   bool
	Dumpable     bool   // else /proc/self/* belongs to root
	RawSocket    string // socket(AF_INET, SOCK_RAW, 112): VRRP adverts (NET_RAW)
	PacketSocket string // socket(AF_PACKET, ...): gratuitous ARP (NET_RAW)
	AddAddress   string // netlink RTM_NEWADDR: binding the VIP (NET_ADMIN)
	GOTRACEBACK  string // "none" after an exec that gained privileges (AT_SECURE)
}

// containerRuntime does, on one thread, what runc does for a container process as containerd
// and CRI-O configure it from the pod's securityContext, then executes the agent: keep the
// capabilities across the change of user, drop every capability outside the bounding set,
// become uid/gid 65532 without supplementary groups, set the permitted and effective sets,
// set no_new_privs.
func containerRuntime() {
	runtime.LockOSThread() // credentials are per thread; execve keeps this thread's
	out := func(r report) {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		os.Exit(0)
	}
	fail := func(step string, err error) {
		fmt.Fprintf(os.Stderr, "runtime: %s: %v\n", step, err)
		os.Exit(2)
	}
	bounding := capSet(os.Getenv(boundingEnv))
	permitted := capSet(os.Getenv(permittedEnv))
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		fail("cap_last_cap", err)
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		fail("cap_last_cap", err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		fail("PR_SET_KEEPCAPS", err)
	}
	for c := 0; c <= lastCap; c++ {
		if bounding&(1<<c) == 0 {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				fail("PR_CAPBSET_DROP "+strconv.Itoa(c), err)
			}
		}
	}
	// Raw system calls: the Go wrappers change every thread's credentials; runc's single
	// thread is what is replayed here.
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		fail("setgroups", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, agentID, agentID, agentID); e != 0 {
		fail("setresgid", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, agentID, agentID, agentID); e != 0 {
		fail("setresuid", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Permitted: uint32(permitted), Effective: uint32(permitted)},
		{Permitted: uint32(permitted >> 32), Effective: uint32(permitted >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		fail("capset", err)
	}
	if os.Getenv(nnpEnv) == "1" {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fail("PR_SET_NO_NEW_PRIVS", err)
		}
	}
	bin := os.Getenv(execEnv)
	env := []string{roleEnv + "=agent"} // the first of two settings of a variable wins
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, roleEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(bin, []string{bin}, env)
	out(report{ExecError: err.Error()})
}

// agent reports its credentials and tries what kube-vrrp's agent does with its capabilities.
func agent() {
	r := report{UID: os.Getuid(), GOTRACEBACK: os.Getenv("GOTRACEBACK")}
	status, _ := os.ReadFile("/proc/self/status")
	c := ParseStatus(status)
	r.CapEff, r.CapPrm, r.CapBnd, r.CapAmb, r.NoNewPrivs = c.CapEff, c.CapPrm, c.CapBnd, c.CapAmb, c.NoNewPrivs
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err == nil {
		r.Dumpable = d == 1
	}
	r.RawSocket = try(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, 112)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	r.PacketSocket = try(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ARP)))
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	r.AddAddress = try(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 0, 1), Mask: net.CIDRMask(32, 32)}})
	})
	_ = json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}

func try(f func() error) string {
	if err := f(); err != nil {
		return err.Error()
	}
	return "ok"
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func capSet(s string) uint64 {
	var m uint64
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			panic(err)
		}
		m |= 1 << n
	}
	return m
}

func capList(m uint64) string {
	var l []string
	for c := 0; c < 64; c++ {
		if m&(1<<c) != 0 {
			l = append(l, strconv.Itoa(c))
		}
	}
	return strings.Join(l, ",")
}

// setImageCaps gives the file at path the file capabilities the Dockerfile gives the image's
// binary, as `setcap cap_net_admin,cap_net_raw=ep` does: Xattr(ImageCaps) in its
// security.capability extended attribute (which needs CAP_SETFCAP).
func setImageCaps(t *testing.T, path string) {
	t.Helper()
	if err := unix.Setxattr(path, XattrName, Xattr(ImageCaps), 0); err != nil {
		t.Fatalf("set file capabilities on %s: %v", path, err)
	}
}

func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNonRootAgentCapabilities replays the container runtime's setup of the agent's process for
// the pod's securityContext (runAsUser 65532, capabilities drop ALL + add NET_ADMIN, NET_RAW,
// allowPrivilegeEscalation false) and checks what the agent can then do.
func TestNonRootAgentCapabilities(t *testing.T) {
	privtest.Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A directory uid 65532 may enter, holding two copies of this binary as the agent: the
	// image's, with file capabilities, and one without.
	dir, err := os.MkdirTemp("", "kube-vrrp-filecaps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	withCaps := filepath.Join(dir, "kube-vrrp")
	plain := filepath.Join(dir, "kube-vrrp-without-file-caps")
	copyExecutable(t, self, withCaps)
	copyExecutable(t, self, plain)
	setImageCaps(t, withCaps)

	const eperm = "operation not permitted"
	for _, tc := range []struct {
		name                string
		bin                 string
		bounding, permitted uint64
		nnp                 bool
		want                report
	}{{
		// What the chart's pod gets from containerd and CRI-O, which put the added
		// capabilities in the bounding, permitted and effective sets whatever the user.
		name: "image on containerd or CRI-O", bin: withCaps,
		bounding: bothCaps, permitted: bothCaps, nnp: true,
		want: report{UID: agentID, CapEff: bothCaps, CapPrm: bothCaps, CapBnd: bothCaps, NoNewPrivs: true,
			Dumpable: true, GOTRACEBACK: "none", RawSocket: "ok", PacketSocket: "ok", AddAddress: "ok"},
	}, {
		// Why the image needs file capabilities: a non-root user's exec clears the
		// permitted and effective sets, and Kubernetes sets no ambient capabilities.
		name: "capabilities.add without file capabilities", bin: plain,
		bounding: bothCaps, permitted: bothCaps, nnp: true,
		want: report{UID: agentID, CapBnd: bothCaps, NoNewPrivs: true, Dumpable: true,
			RawSocket: eperm, PacketSocket: eperm, AddAddress: eperm},
	}, {
		// Docker before 24.0.6 (cri-dockerd) cleared the permitted set of a non-root
		// container process before the exec (moby#45491); under no_new_privs the exec may
		// not gain what it did not hold, so the agent starts without capabilities.
		name: "permitted set cleared by the runtime, no_new_privs", bin: withCaps,
		bounding: bothCaps, permitted: 0, nnp: true,
		want: report{UID: agentID, CapBnd: bothCaps, NoNewPrivs: true, Dumpable: true, GOTRACEBACK: "none",
			RawSocket: eperm, PacketSocket: eperm, AddAddress: eperm},
	}, {
		// There, allowPrivilegeEscalation: true would let the file grant them (and, as
		// the exec gained privileges, make the process non-dumpable).
		name: "permitted set cleared by the runtime, without no_new_privs", bin: withCaps,
		bounding: bothCaps, permitted: 0, nnp: false,
		want: report{UID: agentID, CapEff: bothCaps, CapPrm: bothCaps, CapBnd: bothCaps,
			GOTRACEBACK: "none", RawSocket: "ok", PacketSocket: "ok", AddAddress: "ok"},
	}, {
		// A pod without NET_RAW in capabilities.add: the exec of a binary whose file
		// capabilities cannot all be granted fails, rather than starting a powerless agent.
		name: "NET_RAW not added", bin: withCaps,
		bounding: 1 << capNetAdmin, permitted: 1 << capNetAdmin, nnp: true,
		want: report{ExecError: eperm},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), self)
			cmd.Env = append(os.Environ(),
				roleEnv+"=runtime",
				boundingEnv+"="+capList(tc.bounding),
				permittedEnv+"="+capList(tc.permitted),
				execEnv+"="+tc.bin,
				nnpEnv+"="+map[bool]string{true: "1", false: "0"}[tc.nnp],
			)
			// A network namespace of its own: the agent adds an address there.
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			var got report
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("report %q: %v\n%s", out, err, stderr.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
