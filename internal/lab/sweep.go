package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// namePrefix starts every lab namespace name and the name of a directory a lab makes itself
// (Open without Options.Dir); the creating process's pid follows, so Sweep can tell a crashed
// run's leftovers from a lab that another live process is using.
const namePrefix = "kvl"

var (
	// labName matches a lab's namespaces: kvl<pid>-<4 hex digits>-<sw, cl or node name>.
	labName = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-[0-9a-f]{4}-[a-z0-9]+$`)
	// labDirName matches the directory a lab makes itself under os.TempDir():
	// kvl<pid>-<4 hex digits>-<digits of os.MkdirTemp>.
	labDirName = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-[0-9a-f]{4}-[0-9]+$`)
	sweepOnce  sync.Once
)

// Sweep removes the leftovers of labs whose creating process is gone: what a run killed by
// SIGKILL, a test timeout or a crash left behind. These are the lab's network namespaces
// (and the processes inside them, which it kills) and the directories labs make themselves
// under os.TempDir() (Open without Options.Dir; a test's t.TempDir is the testing package's).
// Labs of live processes, including concurrently running test binaries, are left alone: a
// process owns them only if it is alive and started before they were made (Owned), so a
// reused pid does not keep a dead run's leftovers. New and Open call it once per process.
// It returns the namespaces and the directories (full paths) it removed.
func Sweep() ([]string, error) {
	removed, err := sweepNetns()
	dirs, derr := sweepDirs(os.TempDir(), labDirName)
	return append(removed, dirs...), errors.Join(err, derr)
}

func sweepNetns() ([]string, error) {
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
		// The namespace file's times are those of its nsfs inode, made when `ip netns add`
		// mounted it.
		pid, err := strconv.Atoi(m[1])
		if err != nil || ownedPath(pid, filepath.Join(netnsDir, e.Name())) {
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

// sweepDirs removes the directories in parent whose names match name (the pid its first
// submatch) and that no live run owns. It returns their paths.
func sweepDirs(parent string, name *regexp.Regexp) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		m := name.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		pid, err := strconv.Atoi(m[1])
		if err != nil || ownedPath(pid, dir) {
			continue
		}
		if err := removeTree(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
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
		// This process is listed when its main thread is in the namespace (/proc/PID/ns/net
		// is the thread group leader's): a test locked it there to work in the lab. It is
		// never killed, and listed alone it is not a process left running.
		pids = slices.DeleteFunc(pids, func(pid int) bool { return pid == os.Getpid() })
		if err != nil || len(pids) == 0 {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes still running in netns %s", name)
}

// fatalSignals are the signals a user, a terminal or the system sends to stop a process and
// that kill it by default: Ctrl-C, kill, the terminal's hangup (closing it, or the ssh
// session ending) and Ctrl-\. Each closes the live labs before the process dies.
var fatalSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// Live labs of this process, closed by the signal handler on a fatal signal.
var (
	liveMu      sync.Mutex
	live        = map[*Lab]struct{}{}
	signalsOnce sync.Once
)

// register adds l to the labs the signal handler closes, and installs the handler once per
// process, unless l's caller handles signals itself (Options.NoSignalHandler).
func register(l *Lab) {
	if l.noSignals {
		return
	}
	liveMu.Lock()
	live[l] = struct{}{}
	liveMu.Unlock()
	signalsOnce.Do(handleSignals)
}

// handleSignals closes every live lab on the first fatal signal (and removes the t.TempDir
// directories of tests' labs: the tests' cleanups never run), then dies of that signal as if
// it had never been caught. Signals that arrive meanwhile are acknowledged, not obeyed: the
// cleanup takes seconds, and a second Ctrl-C must not leave everything behind. A process
// started with SIGHUP ignored (nohup) keeps ignoring it: surviving the terminal is what it
// asked for. (SIGINT and SIGQUIT, which a shell ignores for a script's background jobs, are
// caught all the same: kill -INT must still stop a lab cleanly.)
func handleSignals() {
	var sigs []os.Signal
	ignored := map[os.Signal]bool{}
	for _, s := range fatalSignals {
		ignored[s] = signal.Ignored(s)
		if s != syscall.SIGHUP || !ignored[s] {
			sigs = append(sigs, s)
		}
	}
	ch := make(chan os.Signal, len(sigs))
	signal.Notify(ch, sigs...)
	go func() {
		sig := <-ch
		if sig == syscall.SIGQUIT {
			// What Ctrl-\ asks for, before the cleanup changes it: every goroutine's stack.
			buf := make([]byte, 8<<20)
			fmt.Fprintf(os.Stderr, "SIGQUIT: goroutine stacks\n%s\n", buf[:runtime.Stack(buf, true)])
		}
		liveMu.Lock()
		labs := make([]*Lab, 0, len(live))
		for l := range live {
			labs = append(labs, l)
		}
		liveMu.Unlock()
		if len(labs) > 0 {
			fmt.Fprintf(os.Stderr, "lab: %v: removing %d lab(s)\n", sig, len(labs))
		}
		go func() {
			for s := range ch {
				fmt.Fprintf(os.Stderr, "lab: %v: still removing %d lab(s), please wait\n", s, len(labs))
			}
		}()
		for _, l := range labs {
			if err := l.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "lab: close %s: %v\n", l.Prefix, err)
			}
			if l.testDir {
				if err := removeTree(l.dir); err != nil {
					fmt.Fprintf(os.Stderr, "lab: %v\n", err)
				}
				// t.TempDir's parent, if the test made no other directory there.
				_ = os.Remove(filepath.Dir(l.dir))
			}
		}
		if sig == syscall.SIGQUIT {
			os.Exit(2) // Go's exit status for SIGQUIT; the stacks are printed already
		}
		// Die of the signal as if we had never caught it; with the status a shell gives that
		// death if the process started with it ignored (Reset restores that).
		signal.Reset(sig)
		if !ignored[sig] {
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			time.Sleep(time.Second)
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
}
func unregister(l *Lab) {
	liveMu.Lock()
	delete(live, l)
	liveMu.Unlock()
}
