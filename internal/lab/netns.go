package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps the bind mounts that name namespaces.
const netnsDir = "/run/netns"

// inNetns runs fn on an OS thread that has entered the named network namespace. Sockets
// opened by fn stay in that namespace after fn returns. The thread is switched back to the
// namespace it came from before it is handed back to the Go scheduler; if that fails the
// goroutine ends still locked, so the runtime destroys the thread instead of reusing it.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get thread netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(filepath.Join(netnsDir, name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			// setns failed, so the thread is still where it was.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- fmt.Errorf("leave netns %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// writeSysctls writes /proc/sys/net keys inside a namespace. Keys use dots ("net.ipv6.conf.all.accept_dad").
// /proc/sys/net resolves against the writing thread's namespace, so the host's values are
// never touched.
func writeSysctls(ns string, kv [][2]string, optional bool) error {
	return inNetns(ns, func() error {
		for _, e := range kv {
			p := "/proc/sys/" + strings.ReplaceAll(e[0], ".", "/")
			if err := os.WriteFile(p, []byte(e[1]), 0); err != nil {
				if optional && os.IsNotExist(err) {
					continue
				}
				return fmt.Errorf("sysctl %s=%s in %s: %w", e[0], e[1], ns, err)
			}
		}
		return nil
	})
}

// The spawner starts every child process from one OS thread that never exits. Children get
// PR_SET_PDEATHSIG=SIGKILL so they die with the test binary even when it is killed without
// running cleanups; Linux delivers that signal when the *thread* that forked the child exits,
// so forking from an arbitrary (possibly short-lived) thread would kill children at random.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this goroutine lives as long as the process
			for r := range spawnReqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group: a terminal's Ctrl-C reaches only the test binary, which then cleans
	// up in order, and the lab can kill a daemon together with its children.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// run runs a short command to completion and returns its combined output.
func run(ctx context.Context, stdin string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := startCmd(cmd); err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// ipBatch runs iproute2 commands, one per line, inside namespace ns with a single process.
func ipBatch(ctx context.Context, ns string, lines ...string) error {
	_, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", "-n", ns, "-batch", "-")
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w", ns, err)
	}
	return nil
}
