package filecaps

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// Xattr writes what libcap's setcap writes (the Dockerfile's way of giving the image's binary
// its capabilities, and the bytes hack/image puts in the image's layer), for the image's two
// capabilities and for a set that uses the upper word (CAP_BPF is 39).
func TestXattrIsSetcap(t *testing.T) {
	privtest.Require(t)
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("setcap (libcap2-bin, make deps): %v", err)
		}
		t.Skipf("setcap (libcap2-bin): %v", err)
	}
	for _, c := range []struct {
		text string
		caps uint64
	}{
		{"cap_net_admin,cap_net_raw=ep", ImageCaps},
		{"cap_sys_admin,cap_bpf=ep", 1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_BPF},
	} {
		f := filepath.Join(t.TempDir(), "bin")
		if err := os.WriteFile(f, []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(setcap, c.text, f).CombinedOutput(); err != nil {
			t.Fatalf("setcap %s: %v\n%s", c.text, err, out)
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(f, XattrName, buf)
		if err != nil {
			t.Fatalf("getxattr after setcap %s: %v", c.text, err)
		}
		if got := Xattr(c.caps); !bytes.Equal(got, buf[:n]) {
			t.Errorf("Xattr(%#x) = % x, setcap %s wrote % x", c.caps, got, c.text, buf[:n])
		}
	}
}
