package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrRunning is returned by Proc.Wait when the process is still running at the timeout.
var ErrRunning = errors.New("process still running")

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Proc is a process running inside a lab namespace.
type Proc struct {
	// Name is the process's name in the lab (unique per node; also its log's base name).
	Name string
	// Node is where it runs.
	Node *Node
	// Argv is the command as started (without the `ip netns exec` wrapper).
	Argv []string
	// LogPath is the file that receives its stdout and stderr.
	LogPath string
	// EventsPath is the file a kube-vrrp process writes its events to (--events), read by
	// KubeVRRPEvents; empty for other processes.
	EventsPath string

	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	err     error // valid after done
	stopMu  sync.Mutex
}

func startProc(ctx context.Context, n *Node, name string, argv []string) (*Proc, error) {
	logPath := filepath.Join(n.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer f.Close() // the child has its own copy
	full := append([]string{"ip", "netns", "exec", n.NetNS}, argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = n.Dir
	cmd.Stdout = f
	cmd.Stderr = f
	p := &Proc{Name: name, Node: n, Argv: argv, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	if err := startCmd(cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(argv, " "), n.NetNS, err)
	}
	p.started = time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				p.Stop()
			case <-p.done:
			}
		}()
	}
	return p, nil
}

// Pid returns the process id (`ip netns exec` execs the command, so this is the command).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return p.cmd.Process.Signal(sig)
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process ends.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to end and returns its exit error (nil for exit
// status 0), or ErrRunning.
func (p *Proc) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return ErrRunning
	}
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILLs the process group (the process and the
// children it did not move elsewhere). It returns the exit error; a process killed by the
// SIGTERM it asked for is not an error.
func (p *Proc) Stop() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if p.Wait(stopGrace) == ErrRunning {
			p.Kill()
		}
	}
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return p.err
}

// Kill SIGKILLs the process and its process group and waits for it to end.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog waits up to timeout until the log contains substr (counting from offset bytes, see
// LogSize, so a test can wait for the *next* occurrence). It fails early if the process ends.
func (p *Proc) WaitLog(substr string, offset int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.LogPath)
		if int64(len(b)) > offset && bytes.Contains(b[offset:], []byte(substr)) {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s/%s exited (%v) before logging %q", p.Node.Name, p.Name, p.err, substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s: no %q in log after %v", p.Node.Name, p.Name, substr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LogSize returns the log's current size, an offset for WaitLog.
func (p *Proc) LogSize() int64 {
	st, err := os.Stat(p.LogPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// speakerArgv prefixes argv with `nice -n N` when the lab runs its speakers at niceness N.
// nice execs the command, so the process id stays the speaker's.
func (l *Lab) speakerArgv(argv []string) []string {
	if l.nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(l.nice)}, argv...)
}

// Renice sets the niceness of every thread of the calling process (Linux schedules threads,
// and a new thread inherits its creator's niceness), so a test's prober and polling loops
// keep their pace on a loaded machine, as the speakers do with Options.Nice. Lowering the
// niceness needs root (CAP_SYS_NICE).
func Renice(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("renice: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("renice thread %d: %w", tid, err))
		}
	}
	return errors.Join(errs...)
}
