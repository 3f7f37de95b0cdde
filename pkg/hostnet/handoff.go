//go:build linux

package hostnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// stateHandoffFile is the handoff record (docs/design.md §4.9.1): what a MASTER handed
	// over to its successor on this host, as JSON, written whole and renamed into place.
	stateHandoffFile = "handoff"
	// maxHandoffEntries and maxHandoffAddresses bound what is read back from it: one entry
	// per instance (a VRID per interface and family), each with at most a VRRP advert's
	// addresses; maxHandoffBytes bounds the file itself.
	maxHandoffEntries   = 1 << 14
	maxHandoffAddresses = 255
	maxHandoffBytes     = 16 << 20
	// bootIDPath names this boot: a record written under another one outlived a reboot,
	// which took the addresses with it.
	bootIDPath = "/proc/sys/kernel/random/boot_id"
)

// handoffFile is the record as written.
type handoffFile struct {
	BootID  string         `json:"bootID"`
	Entries []HandoffEntry `json:"entries"`
}

// WriteHandoff writes the handoff record: entries replace whatever it held (none: the record
// is removed). Call it once the instances have handed over, before the host lock is released,
// so that the successor, which takes the lock next, finds it.
func (s *State) WriteHandoff(entries []HandoffEntry) error {
	s.mu.Lock()
	s.wroteHandoff = true
	s.mu.Unlock()
	if err := s.writeHandoff(entries); err != nil {
		return fmt.Errorf("write the handoff record: %w", err)
	}
	return nil
}

func (s *State) writeHandoff(entries []HandoffEntry) error {
	path := filepath.Join(s.dir, stateHandoffFile)
	if len(entries) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := checkHandoff(entries); err != nil {
		return err
	}
	boot, err := bootID()
	if err != nil {
		return err
	}
	b, err := json.Marshal(handoffFile{BootID: boot, Entries: entries})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if _, err := writeNew(tmp, append(b, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// TakeHandoff reads the handoff record: the entries a predecessor handed over, for the
// successor to resume. Entries past their deadline are dropped, and so is a record written
// before the last reboot. A record that is malformed (not the package's JSON, an invalid
// interface name or address, too many entries) is removed and never trusted: the error says
// so, and no entries are returned. No record: no entries, no error. The entries stay known to
// the State (RemoveStale leaves their addresses alone until their deadline).
//
// A record with live entries stays until ForgetHandoff, called once the successor has
// settled every entry (resumed it, or removed its addresses): a successor that stops or is
// killed before then leaves it to the next start, which then spares the handed-over addresses
// too, instead of removing them as a killed agent's. A record with no live entry is removed.
func (s *State) TakeHandoff() ([]HandoffEntry, error) {
	path := filepath.Join(s.dir, stateHandoffFile)
	entries, err := readHandoff(path, time.Now())
	if err != nil || len(entries) == 0 {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove the handoff record: %w", rerr))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("handoff record %s: %w", path, err)
	}
	s.mu.Lock()
	s.handoff = append(s.handoff, entries...)
	s.wroteHandoff = false
	s.mu.Unlock()
	return entries, nil
}

// ForgetHandoff removes the handoff record TakeHandoff read, once its entries are settled. It
// leaves alone a record this State has written since the last TakeHandoff (WriteHandoff: its
// own handoff at its stop).
func (s *State) ForgetHandoff() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wroteHandoff {
		return nil
	}
	path := filepath.Join(s.dir, stateHandoffFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the handoff record: %w", err)
	}
	return nil
}

// handedOver returns the unexpired entries of the State's directory: those TakeHandoff returned
// and those of a record not yet taken. A record that cannot be read gives none.
func (s *State) handedOver(now time.Time) []HandoffEntry {
	s.mu.Lock()
	out := make([]HandoffEntry, 0, len(s.handoff))
	for _, e := range s.handoff {
		if now.Before(e.Deadline) {
			out = append(out, e)
		}
	}
	s.mu.Unlock()
	if more, err := readHandoff(filepath.Join(s.dir, stateHandoffFile), now); err == nil {
		out = append(out, more...)
	}
	return out
}

// readHandoff reads the record at path and returns its entries before their deadline at now,
// of this boot.
func readHandoff(path string, now time.Time) ([]HandoffEntry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxHandoffBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", fi.Size(), maxHandoffBytes)
	}
	b := make([]byte, fi.Size()+1)
	n, err := f.Read(b)
	if err != nil && n == 0 && fi.Size() > 0 {
		return nil, err
	}
	if n > int(fi.Size()) {
		return nil, errors.New("grew while read")
	}
	var rec handoffFile
	dec := json.NewDecoder(bytes.NewReader(b[:n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("not a handoff record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a handoff record: data after it")
	}
	if err := checkHandoff(rec.Entries); err != nil {
		return nil, err
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	if rec.BootID != boot {
		return nil, nil // written before a reboot, which took the addresses with it
	}
	var out []HandoffEntry
	for _, e := range rec.Entries {
		if now.Before(e.Deadline) {
			out = append(out, e)
		}
	}
	return out, nil
}

// checkHandoff validates entries as the successor will trust them.
func checkHandoff(entries []HandoffEntry) error {
	if len(entries) > maxHandoffEntries {
		return fmt.Errorf("%d entries, more than %d", len(entries), maxHandoffEntries)
	}
	for i, e := range entries {
		switch {
		case !validIfname(e.Interface):
			return fmt.Errorf("entry %d: invalid interface name %q", i, e.Interface)
		case e.VRID == 0:
			return fmt.Errorf("entry %d: VRID 0", i)
		case len(e.Addresses) == 0 || len(e.Addresses) > maxHandoffAddresses:
			return fmt.Errorf("entry %d: %d addresses, want 1 to %d", i, len(e.Addresses), maxHandoffAddresses)
		case e.Deadline.IsZero():
			return fmt.Errorf("entry %d: no deadline", i)
		}
		for _, p := range e.Addresses {
			if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().Is6() != e.IPv6 {
				return fmt.Errorf("entry %d: invalid address %s for its family", i, p)
			}
		}
	}
	return nil
}

// bootID reads the kernel's id of this boot.
func bootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("read the boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", errors.New("read the boot id: empty")
	}
	return id, nil
}
