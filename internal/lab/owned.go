package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's starttime: 100 on every architecture
// Linux and Go support (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// ownedSlack is how much later than created a process may seem to have started and still
// count as its owner. The two clocks differ: a process's start is kept in ticks since boot
// (10 ms, rounded down) and converted with today's offset between the wall clock and
// CLOCK_BOOTTIME, while file times are the wall clock of the moment, read coarsely (a
// jiffy). A step of the wall clock since (NTP) shifts one against the other. Erring this way
// costs little: a run's leftovers outlive it only if its pid was reused within ownedSlack of
// their creation, and only until that process is gone too.
const ownedSlack = 2 * time.Second

// Owned reports whether something named after process pid (a lab's namespaces and directory,
// a control plane's kvlcp<pid>-… directories and cgroups) and created at created still
// belongs to a live run: pid is alive and started before created. Pids are reused (pid_max
// is often 32768, and a busy machine wraps it in minutes), so a live pid alone proves
// nothing: a process that started after the thing was made cannot have made it. created is
// best the earliest time the kernel recorded for it (CreatedAt).
func Owned(pid int, created time.Time) bool {
	if !processAlive(pid) {
		return false
	}
	start, err := ProcessStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false // it exited in between
	}
	if err != nil {
		return true // alive, start unknown: leave its things alone
	}
	return !start.After(created.Add(ownedSlack))
}

// ProcessStart returns when process pid started, on the wall clock: /proc/PID/stat's
// starttime (ticks since boot, CLOCK_BOOTTIME) plus the time of boot.
func ProcessStart(pid int) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return time.Time{}, err
	}
	// The command name (field 2) is in parentheses and may hold anything: fields count
	// from the last ')'. After it come state (field 3) … starttime (field 22).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, err
	}
	boot := time.Now().Add(-time.Duration(ts.Nano()))
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks)), nil
}

// CreatedAt returns the earliest of path's birth, modification and change times (path is
// followed if a symbolic link or mount point): its creation time where the filesystem keeps
// one, else the nearest the kernel recorded. The times only move later after creation, so
// the earliest is the best guess, and a later one errs towards Owned.
func CreatedAt(path string) (time.Time, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME|unix.STATX_MTIME|unix.STATX_CTIME, &st)
	if errors.Is(err, unix.ENOSYS) {
		var s syscall.Stat_t
		if err := syscall.Stat(path, &s); err != nil {
			return time.Time{}, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		m, c := time.Unix(s.Mtim.Unix()), time.Unix(s.Ctim.Unix())
		return minTime(m, c), nil
	}
	if err != nil {
		return time.Time{}, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	ts := func(t unix.StatxTimestamp) time.Time { return time.Unix(t.Sec, int64(t.Nsec)) }
	t := minTime(ts(st.Mtime), ts(st.Ctime))
	if st.Mask&unix.STATX_BTIME != 0 && st.Btime.Sec != 0 {
		t = minTime(t, ts(st.Btime))
	}
	return t, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ownedPath reports whether path, named after pid, belongs to a live run (Owned, with
// CreatedAt). A path that cannot be read is left alone.
func ownedPath(pid int, path string) bool {
	created, err := CreatedAt(path)
	if err != nil {
		return processAlive(pid)
	}
	return Owned(pid, created)
}

// mountsUnder returns the mount points at or under dir in this process's mount namespace.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeTree removes dir and everything under it, unless something is mounted there:
// os.RemoveAll would descend into the mounted filesystem.
func removeTree(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if len(mounts) > 0 {
		return fmt.Errorf("remove %s: mounted under it: %s", dir, strings.Join(mounts, ", "))
	}
	return os.RemoveAll(dir)
}
