package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// namePrefix starts every lab namespace name; the creating process's pid follows, so Sweep
// can tell a crashed run's leftovers from a lab that another live process is using.
const namePrefix = "kvl"

var (
	labName   = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-[0-9a-f]{4}-[a-z0-9]+$`)
	sweepOnce sync.Once
)

// Sweep removes the namespaces (and kills the processes inside them) of labs whose creating
// process is gone: what a run killed by SIGKILL, a test timeout or a crash left behind.
// Labs of live processes, including concurrently running test binaries, are left alone.
// New and Open call it once per process. It returns the namespaces it removed.
func Sweep() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var removed []string
	var errs []error
	for _, e := range entries {
		m := labName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processAlive(pid) {
			continue
		}
		if err := killNetnsProcs(e.Name()); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(ctx, "", "ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// netnsPids returns the processes whose network namespace is the named one (what
// `ip netns pids` prints).
func netnsPids(name string) ([]int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		return nil, fmt.Errorf("stat netns %s: %w", name, err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "net"))
		if err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsProcs SIGKILLs every process still inside the named namespace: daemons that
// forked away from the process the lab started, or orphans of a crashed run.
func killNetnsProcs(name string) error {
	for range 50 {
		pids, err := netnsPids(name)
		if err != nil || len(pids) == 0 {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, pid := range pids {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes still running in netns %s", name)
}

// Live labs of this process, closed by the signal handler on SIGINT/SIGTERM.
var (
	liveMu      sync.Mutex
	live        = map[*Lab]struct{}{}
	signalsOnce sync.Once
)

func register(l *Lab) {
	liveMu.Lock()
	live[l] = struct{}{}
	liveMu.Unlock()
	signalsOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			liveMu.Lock()
			labs := make([]*Lab, 0, len(live))
			for l := range live {
				labs = append(labs, l)
			}
			liveMu.Unlock()
			if len(labs) > 0 {
				fmt.Fprintf(os.Stderr, "lab: %v: removing %d lab(s)\n", sig, len(labs))
			}
			for _, l := range labs {
				if err := l.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "lab: close %s: %v\n", l.Prefix, err)
				}
			}
			// Die of the signal as if we had never caught it.
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			time.Sleep(time.Second)
			os.Exit(2)
		}()
	})
}

func unregister(l *Lab) {
	liveMu.Lock()
	delete(live, l)
	liveMu.Unlock()
}
