//go:build linux

package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leastPrivilegeEnv makes the test binary run leastPrivilege instead of the tests.
const leastPrivilegeEnv = "HOSTNET_LEAST_PRIVILEGE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(leastPrivilegeEnv) != "" {
		if err := leastPrivilege(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLeastPrivilege runs every Host operation in a process that has only CAP_NET_ADMIN and
// CAP_NET_RAW, as the DaemonSet grants: in particular no CAP_SYS_ADMIN, so nothing may setns.
func TestLeastPrivilege(t *testing.T) {
	n := newTestNS(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop capabilities: %v", err)
	}
	if err := n.nl.LinkAdd(vethPair("x0", "x1")); err != nil {
		t.Fatal(err)
	}
	n.addAddr(t, "x0", netip.MustParsePrefix("198.18.6.1/24"), true)
	n.addAddr(t, "x0", netip.MustParsePrefix("2001:db8:6::1/64"), true)
	n.up(t, "x0", "x1")
	var (
		out []byte
		cmd *exec.Cmd
	)
	// The child is forked from this thread, so it starts in n.
	n.run(t, func() {
		cmd = exec.Command(setpriv, "--bounding-set=-all,+net_admin,+net_raw", "--inh-caps=-all", "--",
			os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), leastPrivilegeEnv+"="+filepath.Join(t.TempDir(), "state"))
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("with CAP_NET_ADMIN and CAP_NET_RAW only: %v\n%s", err, out)
	}
}

func leastPrivilege() error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	const want = 1<<12 | 1<<13 // CAP_NET_ADMIN, CAP_NET_RAW
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil || eff != want {
				return fmt.Errorf("effective capabilities %q, want %x", strings.TrimSpace(v), want)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, err := OpenState(os.Getenv(leastPrivilegeEnv))
	if err != nil {
		return err
	}
	defer st.Close()
	h := NewHost(nil, WithState(st))
	defer h.Close()
	l, err := h.Link("x0")
	if err != nil {
		return err
	}
	vips := []netip.Prefix{netip.MustParsePrefix("198.18.6.100/24"), netip.MustParsePrefix("2001:db8:6::100/64")}
	if err := l.Bind(ctx, vips); err != nil {
		return err
	}
	if err := l.Announce(ctx, []netip.Addr{vips[0].Addr(), vips[1].Addr()}); err != nil {
		return err
	}
	for _, src := range []string{"198.18.6.1", "2001:db8:6::1"} {
		c, err := h.Listen("x0", netip.MustParseAddr(src))
		if err != nil {
			return err
		}
		dst := groupV4
		if strings.Contains(src, ":") {
			dst = groupV6
		}
		err = c.WriteTo([]byte{0x31, 1, 100, 1, 0, 100, 0, 0}, dst)
		c.Close()
		if err != nil {
			return err
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if err := l.WatchRemoved(wctx, func(netip.Prefix) {}); err != nil {
		return err
	}
	if err := l.Unbind(ctx, vips[:1]); err != nil {
		return err
	}
	removed, err := RemoveStale(ctx, st, true)
	if err != nil {
		return err
	}
	if len(removed) != 1 || removed[0] != vips[1] {
		return fmt.Errorf("RemoveStale removed %v, want %v", removed, vips[1:])
	}
	if _, err := Interfaces(); err != nil {
		return err
	}
	if _, err := OpenState(st.Dir()); !errors.Is(err, ErrLocked) {
		return fmt.Errorf("second OpenState: %v, want ErrLocked", err)
	}
	return nil
}
