package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// processChecker implements KindProcess: a process whose comm is name, as pgrep -x, and, when
// exe is set, that runs that program (/proc/PID/exe). comm alone is whatever a process chose to
// call itself (any program named haproxy, or one that renamed itself with PR_SET_NAME, would
// keep the probe healthy); the exe link is the kernel's record of the program it executed.
//
// Every check scans /proc. For each matching process it opens a pidfd (pidfd_open(2), Linux
// 5.3) and waits for it to become readable, which the kernel signals the moment the process
// exits; the Go poller waits on all of them, so no thread is held. When the last watched
// process has exited, events fires and the Runner checks at once. Unlike keepalived's
// vrrp_track_process this needs no process connector (netlink, initial network namespace
// only), so it works inside a network namespace. Where pidfd_open is unavailable (old kernel,
// seccomp) the probe falls back to the scan of every interval.
//
// A zombie is dead: it neither matches a scan nor keeps a pidfd unreadable.
type processChecker struct {
	name string
	exe  string // if set, the program a process must run
	proc string // procfs mount
	self int
	log  *slog.Logger
	exit chan string

	mu      sync.Mutex
	watched map[int]*os.File // pid -> its pidfd
	noPidfd bool             // pidfd_open is unavailable: poll only
	closed  bool
	wg      sync.WaitGroup
}

func newProcessChecker(name, exe string, log *slog.Logger) *processChecker {
	return &processChecker{
		name:    name,
		exe:     exe,
		proc:    "/proc",
		self:    os.Getpid(),
		log:     log,
		exit:    make(chan string, 1),
		watched: map[int]*os.File{},
	}
}

func (c *processChecker) events() <-chan string { return c.exit }

func (c *processChecker) check(ctx context.Context) (bool, string) {
	pids, others, err := c.scan(ctx)
	if err != nil {
		return false, err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, "stopped"
	}
	live := make(map[int]bool, len(pids))
	for _, pid := range pids {
		live[pid] = true
		if _, ok := c.watched[pid]; !ok && !c.noPidfd {
			c.watchLocked(pid)
		}
	}
	// A watched process that no longer matches was renamed (exec of another program,
	// PR_SET_NAME): it must not count as an instance that still runs.
	for pid, f := range c.watched {
		if !live[pid] {
			f.Close()
			delete(c.watched, pid)
		}
	}
	if len(pids) == 0 && c.exe != "" {
		return false, fmt.Sprintf("no process named %q running %s%s", c.name, c.exe, others)
	}
	if len(pids) == 0 {
		if c.self == 1 {
			// PID 1: the agent has a PID namespace of its own (a pod without hostPID) and
			// sees only what runs in its container, never the node's HAProxy.
			return false, fmt.Sprintf("no process named %q: this agent runs in a PID namespace of its own and sees only its container's processes (the pod needs hostPID: true, chart value hostPID)", c.name)
		}
		return false, fmt.Sprintf("no process named %q", c.name)
	}
	if c.exe != "" {
		return true, fmt.Sprintf("%d process(es) named %q running %s, pid %d", len(pids), c.name, c.exe, pids[0])
	}
	return true, fmt.Sprintf("%d process(es) named %q, pid %d", len(pids), c.name, pids[0])
}

// exeMismatch counts the processes that have the name but do not run c.exe, to say why none
// matched.
type exeMismatch struct {
	other      int   // run another program
	unreadable int   // whose program could not be read
	err        error // the first reason it could not
}

func (m exeMismatch) String() string {
	var parts []string
	if m.other > 0 {
		parts = append(parts, fmt.Sprintf("%d named so run another program", m.other))
	}
	if m.unreadable > 0 {
		why := fmt.Sprintf("the program of %d could not be read (%v)", m.unreadable, m.err)
		if errors.Is(m.err, fs.ErrPermission) {
			why += ": without CAP_SYS_PTRACE the agent may read /proc/PID/exe only of its own user's processes"
		}
		parts = append(parts, why)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// scan returns the live processes (not zombies) named c.name that run c.exe if set, except
// this one, and why the others with the name did not count.
func (c *processChecker) scan(ctx context.Context) ([]int, exeMismatch, error) {
	var others exeMismatch
	d, err := os.Open(c.proc)
	if err != nil {
		return nil, others, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	var pids []int
	buf := make([]byte, 512)
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			pid, perr := strconv.Atoi(n)
			if perr != nil || pid == c.self {
				continue
			}
			ok, exeErr := c.matches(pid, buf)
			switch {
			case ok:
				pids = append(pids, pid)
			case exeErr == errOtherProgram:
				others.other++
			case exeErr != nil:
				if others.unreadable == 0 {
					others.err = exeErr
				}
				others.unreadable++
			}
		}
		if err != nil {
			break // io.EOF, or a read error after which the processes seen so far are all we know
		}
		if ctx.Err() != nil {
			return nil, others, fmt.Errorf("list processes: %w", ctx.Err())
		}
	}
	return pids, others, nil
}

// errOtherProgram says that a process has the name but runs another program than c.exe.
var errOtherProgram = errors.New("runs another program")

// matches reports whether pid is a live process named c.name that runs c.exe, if set; when it
// has the name and is alive but its program is not c.exe, the error says why (errOtherProgram,
// or why the program could not be read). comm is read first because it is short; stat then
// tells a zombie apart; the exe link comes last, for the few processes with the name.
func (c *processChecker) matches(pid int, buf []byte) (bool, error) {
	dir := c.proc + "/" + strconv.Itoa(pid)
	comm, ok := readSmall(dir+"/comm", buf)
	if !ok || string(bytes.TrimSuffix(comm, []byte{'\n'})) != c.name {
		return false, nil
	}
	stat, ok := readSmall(dir+"/stat", buf)
	if !ok {
		return false, nil
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false, nil
	}
	switch stat[i+2] {
	case 'Z', 'X', 'x':
		return false, nil
	}
	if c.exe == "" {
		return true, nil
	}
	exe, err := os.Readlink(dir + "/exe")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil // exited meanwhile
	case err != nil:
		// EACCES: ptrace access mode read, i.e. same user or CAP_SYS_PTRACE (proc(5)).
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return false, err
	}
	// A program replaced on disk after the process executed it (a package upgrade) shows as
	// "PATH (deleted)": the process still runs what was at PATH, which only root could
	// replace; a restart of the service follows the upgrade.
	if exe == c.exe || exe == c.exe+" (deleted)" {
		return true, nil
	}
	return false, errOtherProgram
}

// readSmall reads the start of a small procfs file into buf; raw system calls, because it runs
// for every process on the node and os.File's extra fstat and bookkeeping double its cost.
func readSmall(path string, buf []byte) ([]byte, bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return nil, false
		}
		return buf[:n], true
	}
}

// watchLocked opens a pidfd of pid and waits for its exit in a goroutine.
func (c *processChecker) watchLocked(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return // gone already: the next scan knows
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM): // no syscall, or a seccomp filter
		c.noPidfd = true
		c.log.Info("pidfd_open is unavailable: the process probe sees exits only when it scans, once per interval", "error", err)
		return
	case err != nil:
		c.log.Debug("pidfd_open failed", "pid", pid, "error", err)
		return
	}
	// The pid may have been reused between the scan and pidfd_open; the pidfd pins whichever
	// process it now names, so check that this one is still ours.
	if ok, _ := c.matches(pid, make([]byte, 512)); !ok {
		unix.Close(fd)
		return
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return
	}
	// A non-blocking fd given to os.NewFile is registered with the runtime poller, so waiting
	// for it holds no thread.
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	c.watched[pid] = f
	c.wg.Go(func() { c.wait(pid, f) })
}

// wait blocks until the process behind f exits or f is closed.
func (c *processChecker) wait(pid int, f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	var exited bool
	err = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(pfd, 0)
			if err == unix.EINTR {
				continue
			}
			// Readable (or an error, which pidfds do not report for a live process): exited.
			exited = err != nil || n > 0
			return exited
		}
	})
	if err != nil || !exited {
		return // closed by close or check
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watched[pid] != f {
		return
	}
	delete(c.watched, pid)
	f.Close()
	if len(c.watched) > 0 {
		return // another instance still runs
	}
	select {
	case c.exit <- fmt.Sprintf("process %q (pid %d) exited", c.name, pid):
	default: // one pending event is enough
	}
}

func (c *processChecker) close() {
	c.mu.Lock()
	c.closed = true
	for pid, f := range c.watched {
		f.Close()
		delete(c.watched, pid)
	}
	c.mu.Unlock()
	c.wg.Wait()
}
