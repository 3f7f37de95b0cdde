//go:build linux

package hostnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The files of a state directory.
const (
	stateLockFile  = "lock"
	stateBoundFile = "bound"
	// maxBoundRecords bounds what is read back from the record.
	maxBoundRecords = 1 << 16
)

// State is the agent's host-local state directory. Holding it is the host lock: one agent per
// host (per network namespace in a lab, which gives each node its own directory). The lock is
// an exclusive flock(2) on a file in a directory private to the agent's user, so no other
// user can take or squat it, and the kernel releases it when the process dies. The directory
// also holds the record of the virtual addresses this agent has bound: on kernels before 6.1,
// which drop the IFA_PROTO mark, it is the only way a restarted agent can find the addresses
// its killed predecessor left on the link.
type State struct {
	dir  string
	lock *os.File

	mu sync.Mutex
	// bound is what the record lists: the addresses bound and not yet removed.
	bound map[BoundAddr]bool
	// stale is what the record listed when the state was opened: the predecessor's.
	stale []BoundAddr
}

// OpenState takes the host lock in dir, creating dir (mode 0700) if needed, and reads the
// record left there. It fails with an error wrapping ErrLocked while another agent holds the
// lock, and refuses a directory that other users can write to or that belongs to another user.
func OpenState(dir string) (*State, error) {
	s, err := openState(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	return s, nil
}

func openState(dir string) (*State, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, errors.New("must be an absolute path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return nil, errors.New("not a directory")
	case !ok:
		return nil, errors.New("cannot read its owner")
	case int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("owned by uid %d, not by this agent's uid %d (make it the agent's, mode 0700)", st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("mode %v lets other users write to it (make it 0700)", fi.Mode().Perm())
	}
	f, err := os.OpenFile(filepath.Join(dir, stateLockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	s := &State{dir: dir, lock: f, bound: map[BoundAddr]bool{}}
	stale, err := readBound(filepath.Join(dir, stateBoundFile))
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	s.stale = stale
	for _, b := range stale {
		s.bound[b] = true
	}
	return s, nil
}

// readBound reads the record: one "INTERFACE PREFIX" per line. A line that does not parse is
// an error: the record is only ever written whole by this package.
func readBound(path string) ([]BoundAddr, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the record of bound addresses: %w", err)
	}
	var out []BoundAddr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if len(out) == maxBoundRecords {
			return nil, fmt.Errorf("%s: more than %d records", path, maxBoundRecords)
		}
		ifname, prefix, ok := strings.Cut(line, " ")
		p, perr := netip.ParsePrefix(prefix)
		if !ok || perr != nil || !validIfname(ifname) || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return nil, fmt.Errorf("%s:%d: not \"INTERFACE ADDRESS/LENGTH\": remove the file if it was edited by hand", path, n)
		}
		out = append(out, BoundAddr{Interface: ifname, Prefix: p})
	}
	return out, sc.Err()
}

// validIfname is the kernel's rule for interface names (dev_valid_name).
func validIfname(s string) bool {
	if s == "" || len(s) >= unix.IFNAMSIZ || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\x00")
}

// Stale returns what the record listed when the state was opened: the addresses a previous
// agent bound and did not remove.
func (s *State) Stale() []BoundAddr { return slices.Clone(s.stale) }

// Dir returns the state directory.
func (s *State) Dir() string { return s.dir }

// Close releases the host lock. The record stays for the next agent.
func (s *State) Close() error {
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("release host lock: %w", err)
	}
	return nil
}

// forgetAll empties the record, once the stale addresses it listed are gone.
func (s *State) forgetAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale = nil
	if len(s.bound) == 0 {
		return nil
	}
	clear(s.bound)
	return s.writeLocked()
}

// record adds (on) or removes addresses and writes the record when it changed. The file is
// written whole and renamed into place, so a kill mid-write leaves the old record or the new.
func (s *State) record(ifname string, ps []netip.Prefix, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, p := range ps {
		b := BoundAddr{Interface: ifname, Prefix: p}
		if s.bound[b] != on {
			changed = true
			if on {
				s.bound[b] = true
			} else {
				delete(s.bound, b)
			}
		}
	}
	if !changed {
		return nil
	}
	return s.writeLocked()
}

func (s *State) writeLocked() error {
	lines := make([]string, 0, len(s.bound))
	for b := range s.bound {
		lines = append(lines, b.String()+"\n")
	}
	slices.Sort(lines)
	tmp := filepath.Join(s.dir, stateBoundFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "")), 0o600); err != nil {
		return fmt.Errorf("write the record of bound addresses: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, stateBoundFile)); err != nil {
		return fmt.Errorf("write the record of bound addresses: %w", err)
	}
	return nil
}

// RemoveStale removes the virtual addresses an agent that was killed before it could unbind
// them left behind, in the calling thread's network namespace, and returns them. It finds them
// two ways: the IFA_PROTO mark (see AddrProto; Linux >= 6.1) on any link, unless marks is
// false, and, with st, the record of st's directory, which works on every kernel. A recorded
// address is removed only from the interface it was recorded on. An address with neither the
// mark nor a record is never touched. st's record is then emptied.
func RemoveStale(ctx context.Context, st *State, marks bool) ([]netip.Prefix, error) {
	removed, err := removeStale(ctx, st, marks)
	if err != nil {
		return removed, fmt.Errorf("remove stale addresses: %w", err)
	}
	return removed, nil
}

func removeStale(ctx context.Context, st *State, marks bool) ([]netip.Prefix, error) {
	rt, err := newRTNL()
	if err != nil {
		return nil, err
	}
	defer rt.close()
	have, err := rt.addrs(0)
	if err != nil {
		return nil, err
	}
	recorded := map[int]map[netip.Prefix]bool{}
	if st != nil {
		for _, b := range st.Stale() {
			idx, err := linkIndex(b.Interface)
			if err != nil {
				continue // the link went, and the address with it
			}
			if recorded[idx] == nil {
				recorded[idx] = map[netip.Prefix]bool{}
			}
			recorded[idx][b.Prefix] = true
		}
	}
	// On a kernel that keeps IFA_PROTO (it marks its own addresses too, 6.1 and later), with
	// marks on, the mark alone decides: a recorded address without it was never added (a kill
	// between the record and the add) and may be someone else's. Otherwise the record decides,
	// but never for an address another program marked as its own.
	kernelMarks := slices.ContainsFunc(have, func(a kernelAddr) bool { return a.Proto != 0 })
	var (
		removed []netip.Prefix
		errs    []error
	)
	for _, a := range have {
		stale := marks && a.ours()
		if !stale && recorded[a.Index][a.Prefix] {
			stale = (a.Proto == 0 || a.ours()) && !(marks && kernelMarks)
		}
		if !stale {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := rt.del(a.Index, a.Prefix); err != nil && !gone(err) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, a.Prefix)
	}
	if st != nil && len(errs) == 0 {
		if err := st.forgetAll(); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// linkIndex returns the index of the interface ifname in the calling thread's namespace.
func linkIndex(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// PrepareStateDir makes dir (created if missing) a state directory for the user uid:gid: owned
// by them, mode 0700. It is what the chart's init container runs as root with CAP_CHOWN alone,
// since the agent, not root, cannot create or take over a directory under /run. A symbolic link
// or a file at dir is refused: the directory is trusted for the host lock and the record.
func PrepareStateDir(dir string, uid, gid int) error {
	if err := prepareStateDir(dir, uid, gid); err != nil {
		return fmt.Errorf("prepare state directory %s: %w", dir, err)
	}
	return nil
}

func prepareStateDir(dir string, uid, gid int) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return errors.New("must be an absolute path")
	}
	if uid < 0 || gid < 0 {
		return fmt.Errorf("owner %d:%d is not a user and group id", uid, gid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	// Root's own first, so that the mode can be set without CAP_FOWNER, then the agent's.
	if err := os.Lchown(dir, 0, 0); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return os.Lchown(dir, uid, gid)
}
