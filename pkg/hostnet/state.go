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
	"time"

	"golang.org/x/sys/unix"
)

// The files of a state directory.
const (
	stateLockFile = "lock"
	// stateBoundFile is the record's snapshot: one "INTERFACE PREFIX" per line, written whole
	// and renamed into place. It is all the record was before the journal, and what a previous
	// version of the agent left.
	stateBoundFile = "bound"
	// stateJournalFile holds the changes since the snapshot: a header line naming the snapshot
	// it follows ("# snapshot DEV:INODE"), then one line per change, appended: "+ " or "- "
	// and then "INTERFACE PREFIX".
	stateJournalFile = "bound.journal"
	// maxBoundRecords bounds what is read back from the record: the addresses it lists, and
	// four times as many journal lines.
	maxBoundRecords = 1 << 16
	// journalSlack is how many journal lines are let be beyond twice the live set before the
	// record is compacted (a snapshot of the live set, an empty journal).
	journalSlack = 64
)

// State is the agent's host-local state directory. Holding it is the host lock: one agent per
// host (per network namespace in a lab, which gives each node its own directory). The lock is
// an exclusive flock(2) on a file in a directory private to the agent's user, so no other
// user can take or squat it, and the kernel releases it when the process dies. The directory
// also holds the record of the virtual addresses this agent has bound: on kernels before 6.1,
// which drop the IFA_PROTO mark, it is the only way a restarted agent can find the addresses
// its killed predecessor left on the link.
//
// The record is a snapshot (stateBoundFile) and a journal of the changes since
// (stateJournalFile): a change appends a line, so that binding N addresses one by one costs
// O(N), not the O(N^2) of writing the whole record each time. A line is only ever appended
// whole after the last one ended; one cut short (a kill or a full disk mid-write) is the last
// line, has no newline, and is ignored when read: it was a change not yet made (an address is
// recorded before it is added) or a removal already made (harmless to list). After a failed
// append nothing more is appended until the record was compacted. The record is compacted
// when the journal grows past twice the live set, at the first change after opening (so a
// predecessor's torn line is never appended to) and after a failed append: the live set is
// written as a new snapshot and renamed into place, then the journal is emptied and starts
// with the new snapshot's id (see snapshotID). A journal whose header names another file than the snapshot
// was compacted into it already (a kill between the rename and the emptying): it is not
// replayed, which would undo the changes made since it was written.
type State struct {
	dir  string
	lock *os.File

	mu sync.Mutex
	// bound is what the record lists: the addresses bound and not yet removed.
	bound map[BoundAddr]bool
	// stale is what the record listed when the state was opened: the predecessor's.
	stale []BoundAddr
	// journal is open for appending once the record was compacted by this State; nil before,
	// and after a failed append until the next compaction. journalLines counts its lines.
	journal      *os.File
	journalLines int
	// handoff holds the entries TakeHandoff returned: RemoveStale leaves their addresses alone
	// until their deadline (handoff.go).
	handoff []HandoffEntry
	// wroteHandoff is set when WriteHandoff was called since the last TakeHandoff:
	// ForgetHandoff leaves the record then.
	wroteHandoff bool
	// vmacs is the record of virtual MAC interfaces (vmac_state.go); vmacLog is its file open
	// for appending once compacted by this State, vmacLines the lines appended since.
	vmacs     map[string]vmacRecord
	vmacLog   *os.File
	vmacLines int
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
	stale, err := readRecord(dir)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	s.stale = stale
	for _, b := range stale {
		s.bound[b] = true
	}
	if s.vmacs, err = readVMACRecord(dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

// readRecord reads the record of dir: the snapshot, then the journal's changes applied in
// order. The snapshot alone is a record as a previous version wrote it.
func readRecord(dir string) ([]BoundAddr, error) {
	snap, err := readBound(filepath.Join(dir, stateBoundFile))
	if err != nil {
		return nil, err
	}
	set := make(map[BoundAddr]bool, len(snap))
	for _, b := range snap {
		set[b] = true
	}
	id, err := snapshotID(filepath.Join(dir, stateBoundFile))
	if err != nil {
		return nil, err
	}
	order, err := replayJournal(filepath.Join(dir, stateJournalFile), id, set)
	if err != nil {
		return nil, err
	}
	// In the order first listed: the snapshot's, then those the journal added.
	out := make([]BoundAddr, 0, len(set))
	for _, b := range append(snap, order...) {
		if set[b] {
			out = append(out, b)
			delete(set, b)
		}
	}
	return out, nil
}

// readBound reads a snapshot: one "INTERFACE PREFIX" per line. A line that does not parse is
// an error: a snapshot is only ever written whole by this package.
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
		ba, ok := parseBoundLine(line)
		if !ok {
			return nil, fmt.Errorf("%s:%d: not \"INTERFACE ADDRESS/LENGTH\": remove the file if it was edited by hand", path, n)
		}
		out = append(out, ba)
	}
	return out, sc.Err()
}

// snapshotID names the snapshot file at path as a journal's header does ("" when there is
// none): its device, inode and modification time in nanoseconds. The inode alone is new for
// each snapshot only until the one before is unlinked: a snapshot is written to a new file
// renamed into place while the old one is still there, but after two compactions cut short
// (each killed between its rename and emptying the journal) the third snapshot may get the
// first one's inode back, and the stale journal would name it. writeNew stamps each snapshot
// with the time it was written, read from the fine-grained clock, which a rename keeps.
func snapshotID(path string) (string, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the record of bound addresses: %w", err)
	}
	return fileID(fi), nil
}

func fileID(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d", st.Dev, st.Ino, st.Mtim.Nano())
}

// legacyFileID is the id journals of earlier versions name their snapshot by: device and
// inode only. Such a journal is replayed when they match, as those versions did.
func legacyFileID(id string) string {
	if i := strings.LastIndexByte(id, ':'); strings.Count(id, ":") == 2 {
		return id[:i]
	}
	return id
}

// journalHeader is the first line of a journal that follows the snapshot id.
func journalHeader(id string) string { return "# snapshot " + id + "\n" }

// replayJournal applies the changes of the journal at path to set in order, when the journal
// follows the snapshot id, and returns the addresses it added, in order. Its last line, when it
// has no newline, was cut short and is ignored; any other line that does not parse is an error.
func replayJournal(path, id string, set map[BoundAddr]bool) (added []BoundAddr, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the journal of bound addresses: %w", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		b = b[:i+1] // a torn last line: a change not (or already) made, see State
	}
	if len(b) == 0 {
		return nil, nil
	}
	if !bytes.HasPrefix(b, []byte("# snapshot ")) {
		return nil, fmt.Errorf("%s:1: not \"# snapshot DEVICE:INODE:MTIME\": remove the file if it was edited by hand", path)
	}
	i := bytes.IndexByte(b, '\n')
	if h := string(b[:i+1]); id == "" || h != journalHeader(id) && h != journalHeader(legacyFileID(id)) {
		return nil, nil // compacted into the snapshot already
	}
	b = b[i+1:]
	for n := 2; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		line := string(b[:i])
		b = b[i+1:]
		if n > 4*maxBoundRecords {
			return nil, fmt.Errorf("%s: more than %d lines", path, 4*maxBoundRecords)
		}
		var on bool
		switch {
		case strings.HasPrefix(line, "+ "):
			on = true
		case strings.HasPrefix(line, "- "):
		default:
			return nil, fmt.Errorf("%s:%d: not \"+ INTERFACE ADDRESS/LENGTH\" or \"- INTERFACE ADDRESS/LENGTH\": remove the file if it was edited by hand", path, n)
		}
		ba, ok := parseBoundLine(line[2:])
		if !ok {
			return nil, fmt.Errorf("%s:%d: not \"+ INTERFACE ADDRESS/LENGTH\" or \"- INTERFACE ADDRESS/LENGTH\": remove the file if it was edited by hand", path, n)
		}
		switch {
		case !on:
			delete(set, ba)
		case set[ba]:
		case len(set) == maxBoundRecords:
			return nil, fmt.Errorf("%s: more than %d records", path, maxBoundRecords)
		default:
			set[ba] = true
			added = append(added, ba)
		}
	}
	return added, nil
}

// parseBoundLine parses "INTERFACE ADDRESS/LENGTH".
func parseBoundLine(line string) (BoundAddr, bool) {
	ifname, prefix, ok := strings.Cut(line, " ")
	p, perr := netip.ParsePrefix(prefix)
	if !ok || perr != nil || !validIfname(ifname) || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return BoundAddr{}, false
	}
	return BoundAddr{Interface: ifname, Prefix: p}, true
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

// Close compacts the record, so that its snapshot alone is the whole of it (what a previous
// version of the agent reads), and releases the host lock. The record stays for the next agent.
func (s *State) Close() error {
	s.mu.Lock()
	var err error
	if s.journal != nil {
		if s.journalLines > 0 {
			err = s.compactLocked()
		}
		if s.journal != nil {
			_ = s.journal.Close()
			s.journal = nil
		}
	}
	if s.vmacLog != nil {
		_ = s.vmacLog.Close()
		s.vmacLog = nil
	}
	s.mu.Unlock()
	if lerr := s.lock.Close(); lerr != nil {
		return errors.Join(err, fmt.Errorf("release host lock: %w", lerr))
	}
	return err
}

// forgetAll empties the record, once the stale addresses it listed are gone, except for keep:
// addresses handed over to a successor, which stay recorded as they stay on the link.
func (s *State) forgetAll(keep map[BoundAddr]bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale = nil
	n := len(s.bound)
	for b := range s.bound {
		if !keep[b] {
			delete(s.bound, b)
		}
	}
	if n == 0 || (len(s.bound) == n && s.journal != nil) {
		return nil
	}
	return s.compactLocked()
}

// record adds (on) or removes addresses and, when that changed the record, appends the changes
// to the journal in one write (see State), compacting the record instead when the journal is
// not open or has grown past twice the live set.
func (s *State) record(ifname string, ps []netip.Prefix, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := "- "
	if on {
		op = "+ "
	}
	var buf []byte
	n := 0
	for _, p := range ps {
		b := BoundAddr{Interface: ifname, Prefix: p}
		if s.bound[b] == on {
			continue
		}
		if on {
			s.bound[b] = true
		} else {
			delete(s.bound, b)
		}
		buf = append(append(append(buf, op...), b.String()...), '\n')
		n++
	}
	if n == 0 {
		return nil
	}
	if s.journal == nil || s.journalLines+n > 2*len(s.bound)+journalSlack {
		return s.compactLocked()
	}
	if _, err := s.journal.Write(buf); err != nil {
		// Perhaps a part of the lines was written: append nothing after it.
		_ = s.journal.Close()
		s.journal = nil
		if cerr := s.compactLocked(); cerr != nil {
			return errors.Join(fmt.Errorf("append to the journal of bound addresses: %w", err), cerr)
		}
		return nil
	}
	s.journalLines += n
	return nil
}

// compactLocked writes the live set as the snapshot, whole, renamed into place, and then
// empties the journal and opens it for appending.
func (s *State) compactLocked() error {
	if s.journal != nil {
		_ = s.journal.Close()
		s.journal = nil
	}
	lines := make([]string, 0, len(s.bound))
	for b := range s.bound {
		lines = append(lines, b.String()+"\n")
	}
	slices.Sort(lines)
	tmp := filepath.Join(s.dir, stateBoundFile+".tmp")
	id, err := writeNew(tmp, []byte(strings.Join(lines, "")))
	if err != nil {
		return fmt.Errorf("write the record of bound addresses: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, stateBoundFile)); err != nil {
		return fmt.Errorf("write the record of bound addresses: %w", err)
	}
	// Killed here, the journal names the snapshot just replaced: it is not replayed.
	f, err := os.OpenFile(filepath.Join(s.dir, stateJournalFile),
		os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("empty the journal of bound addresses: %w", err)
	}
	if _, err := f.WriteString(journalHeader(id)); err != nil {
		_ = f.Close()
		return fmt.Errorf("empty the journal of bound addresses: %w", err)
	}
	s.journal, s.journalLines = f, 0
	return nil
}

// writeNew writes b to a new file at path (replacing any) and returns its id (snapshotID).
func writeNew(path string, b []byte) (string, error) {
	_ = os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		// The file system's own stamp comes from a coarse clock (a tick of several ms):
		// two snapshots written within one tick could share an inode and a stamp.
		now := unix.NsecToTimespec(time.Now().UnixNano())
		err = unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return fileID(fi), nil
}

// RemoveStale removes the virtual addresses an agent that was killed before it could unbind
// them left behind, in the calling thread's network namespace, and returns them. It finds them
// two ways: the IFA_PROTO mark (see AddrProto; Linux >= 6.1) on any link, unless marks is
// false, and, with st, the record of st's directory, which works on every kernel. A recorded
// address is removed only from the interface it was recorded on. An address with neither the
// mark nor a record is never touched. st's record is then emptied.
//
// With st it first deletes the virtual MAC interfaces st records (docs/design.md §5.9), whose
// addresses go with them and are returned too, except those an unexpired handoff entry
// names, and rebuilds the nftables tables VMACTable for those alone (or deletes them).
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
	var (
		removed []netip.Prefix
		errs    []error
		handoff []HandoffEntry
		spared  []vmacRecord
	)
	if st != nil {
		// The virtual MAC interfaces first: their addresses go with them.
		now := time.Now()
		handoff = st.handedOver(now)
		var gone []netip.Prefix
		var err error
		spared, gone, err = removeStaleVMACs(rt, st, handoff, now)
		removed = append(removed, gone...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	have, err := rt.addrs(0)
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	recorded := map[int]map[netip.Prefix]bool{}
	handed := map[int]map[netip.Prefix]bool{}
	keep := map[BoundAddr]bool{}
	if st != nil {
		for _, e := range handoff {
			// Handed over on the interface, or on its virtual MAC interface.
			names := []string{e.Interface}
			if i := slices.IndexFunc(spared, func(r vmacRecord) bool {
				return r.Parent == e.Interface && r.VRID == e.VRID && r.IPv6 == e.IPv6
			}); i >= 0 {
				names = append(names, spared[i].Name)
			}
			for _, name := range names {
				idx, err := linkIndex(name)
				if err != nil {
					continue
				}
				if handed[idx] == nil {
					handed[idx] = map[netip.Prefix]bool{}
				}
				for _, p := range e.Addresses {
					handed[idx][p] = true
					keep[BoundAddr{Interface: name, Prefix: p}] = true
				}
			}
		}
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
	for _, a := range have {
		stale := marks && a.ours()
		if !stale && recorded[a.Index][a.Prefix] {
			stale = (a.Proto == 0 || a.ours()) && !(marks && kernelMarks)
		}
		if !stale || handed[a.Index][a.Prefix] {
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
		if err := st.forgetAll(keep); err != nil {
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
