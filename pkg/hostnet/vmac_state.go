//go:build linux

package hostnet

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// stateVMACFile is the record of the virtual MAC interfaces the agent created
	// (docs/design.md §5.9): a journal of "+ NAME PARENT FAMILY VRID PRIMARY" and "- NAME"
	// lines, appended, and compacted (the live set written to a new file renamed into place)
	// at the first change after opening and when it grows past twice the live set.
	stateVMACFile = "vmac"
	// maxVMACRecords bounds what is read back: the live interfaces, and four times as many
	// lines.
	maxVMACRecords = 1 << 12
)

// vmacRecord is a virtual MAC interface as the state records it: the proof that the link of
// that name is kube-vrrp's to delete, and what the ARP filter needs of it after a restart.
type vmacRecord struct {
	Name   string
	Parent string
	VRID   uint8
	IPv6   bool
	// Primary is the instance's own address on the parent (its advert source), which the
	// parent writes as the sender of its ARP requests in place of a virtual address.
	Primary netip.Addr
}

func (r vmacRecord) String() string {
	fam := "4"
	if r.IPv6 {
		fam = "6"
	}
	return fmt.Sprintf("%s %s %s %d %s", r.Name, r.Parent, fam, r.VRID, r.Primary)
}

// parseVMACRecord parses "NAME PARENT FAMILY VRID PRIMARY", checking it as a record this
// package writes: the name is the one vmacName gives.
func parseVMACRecord(s string) (vmacRecord, bool) {
	f := strings.Split(s, " ")
	if len(f) != 5 {
		return vmacRecord{}, false
	}
	vrid, err := strconv.ParseUint(f[3], 10, 8)
	if err != nil || vrid == 0 || (f[2] != "4" && f[2] != "6") {
		return vmacRecord{}, false
	}
	p, err := netip.ParseAddr(f[4])
	r := vmacRecord{Name: f[0], Parent: f[1], VRID: uint8(vrid), IPv6: f[2] == "6", Primary: p}
	if err != nil || p.Zone() != "" || p.Is4In6() || p.Is6() != r.IPv6 || !validIfname(r.Parent) ||
		r.Name != vmacName(r.Parent, r.VRID, r.IPv6) {
		return vmacRecord{}, false
	}
	return r, true
}

// readVMACRecord reads the record of dir. A last line without a newline was cut short (a kill
// or a full disk mid-write) and is ignored: a creation recorded before it was made, or a
// deletion already made. Any other line that does not parse is an error.
func readVMACRecord(dir string) (map[string]vmacRecord, error) {
	path := filepath.Join(dir, stateVMACFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]vmacRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the record of virtual MAC interfaces: %w", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		b = b[:i+1]
	}
	out := map[string]vmacRecord{}
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		line := string(b[:i])
		b = b[i+1:]
		if n > 4*maxVMACRecords {
			return nil, fmt.Errorf("%s: more than %d lines", path, 4*maxVMACRecords)
		}
		bad := fmt.Errorf("%s:%d: not \"+ NAME PARENT FAMILY VRID PRIMARY\" or \"- NAME\": remove the file if it was edited by hand", path, n)
		switch {
		case strings.HasPrefix(line, "+ "):
			r, ok := parseVMACRecord(line[2:])
			if !ok {
				return nil, bad
			}
			if _, had := out[r.Name]; !had && len(out) == maxVMACRecords {
				return nil, fmt.Errorf("%s: more than %d records", path, maxVMACRecords)
			}
			out[r.Name] = r
		case strings.HasPrefix(line, "- ") && validIfname(line[2:]):
			delete(out, line[2:])
		default:
			return nil, bad
		}
	}
	return out, nil
}

// recordVMAC records r (replacing a record of the same name), before the interface is
// created: a kill in between leaves a record of an absent interface, never an unrecorded one.
func (s *State) recordVMAC(r vmacRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.vmacs[r.Name]; ok && old == r {
		return nil
	}
	if _, ok := s.vmacs[r.Name]; !ok && len(s.vmacs) >= maxVMACRecords {
		return fmt.Errorf("record the virtual MAC interface %s: %d recorded already", r.Name, maxVMACRecords)
	}
	s.vmacs[r.Name] = r
	return s.appendVMACLocked("+ " + r.String() + "\n")
}

// forgetVMAC drops the record of the interface name, once it is deleted.
func (s *State) forgetVMAC(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vmacs[name]; !ok {
		return nil
	}
	delete(s.vmacs, name)
	return s.appendVMACLocked("- " + name + "\n")
}

// vmacRecords returns the recorded interfaces, by name.
func (s *State) vmacRecords() []vmacRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]vmacRecord, 0, len(s.vmacs))
	for _, r := range s.vmacs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b vmacRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// vmacRecorded returns the record of the interface name.
func (s *State) vmacRecorded(name string) (vmacRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.vmacs[name]
	return r, ok
}

// appendVMACLocked appends line to the journal, or compacts it instead when it is not open or
// has grown past twice the live set. After a failed append nothing more is appended until it
// was compacted.
func (s *State) appendVMACLocked(line string) error {
	if s.vmacLog == nil || s.vmacLines+1 > 2*len(s.vmacs)+journalSlack {
		return s.compactVMACLocked()
	}
	if _, err := s.vmacLog.WriteString(line); err != nil {
		_ = s.vmacLog.Close()
		s.vmacLog = nil
		if cerr := s.compactVMACLocked(); cerr != nil {
			return errors.Join(fmt.Errorf("append to the record of virtual MAC interfaces: %w", err), cerr)
		}
		return nil
	}
	s.vmacLines++
	return nil
}

// compactVMACLocked writes the live set to a new file renamed over the record, and opens it
// for appending.
func (s *State) compactVMACLocked() error {
	if s.vmacLog != nil {
		_ = s.vmacLog.Close()
		s.vmacLog = nil
	}
	lines := make([]string, 0, len(s.vmacs))
	for _, r := range s.vmacs {
		lines = append(lines, "+ "+r.String()+"\n")
	}
	slices.Sort(lines)
	path := filepath.Join(s.dir, stateVMACFile)
	if _, err := writeNew(path+".tmp", []byte(strings.Join(lines, ""))); err != nil {
		return fmt.Errorf("write the record of virtual MAC interfaces: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("write the record of virtual MAC interfaces: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open the record of virtual MAC interfaces: %w", err)
	}
	s.vmacLog, s.vmacLines = f, 0
	return nil
}

// ownsVMAC reports whether the link d is the recorded virtual MAC interface r: a macvlan of
// that name with the virtual router MAC address of r's VRID and family. A link that took the
// name of a deleted one is not.
func ownsVMAC(d linkDetail, r vmacRecord) bool {
	return d.name == r.Name && d.kind == "macvlan" && bytes.Equal(d.mac, vmacAddr(r.VRID, r.IPv6))
}

// removeStaleVMACs deletes the recorded virtual MAC interfaces a killed predecessor left,
// except those of the unexpired handoff entries handed, which it returns (their successor
// adopts them), and rebuilds the filter tables for those alone (or deletes them). A record
// whose link is gone, or is no longer the one recorded, is dropped; a link that is not
// recorded is never touched.
// The addresses it returns were on the deleted interfaces and went with them.
func removeStaleVMACs(rt *rtnl, st *State, handed []HandoffEntry, now time.Time) ([]vmacRecord, []netip.Prefix, error) {
	var (
		spared  []vmacRecord
		removed []netip.Prefix
		errs    []error
	)
	for _, r := range st.vmacRecords() {
		d, err := rt.linkDetailByName(r.Name)
		if errors.Is(err, unix.ENODEV) || (err == nil && !ownsVMAC(d, r)) {
			if err := st.forgetVMAC(r.Name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.ContainsFunc(handed, func(e HandoffEntry) bool {
			return e.Interface == r.Parent && e.VRID == r.VRID && e.IPv6 == r.IPv6 && now.Before(e.Deadline)
		}) {
			spared = append(spared, r)
			continue
		}
		had, _ := rt.addrs(d.index)
		if err := rt.delLink(d.index); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
			continue
		}
		for _, a := range had {
			if !a.Prefix.Addr().IsLinkLocalUnicast() {
				removed = append(removed, a.Prefix)
			}
		}
		if err := st.forgetVMAC(r.Name); err != nil {
			errs = append(errs, err)
		}
	}
	// The filter for what stays: the handed-over addresses of the spared IPv4 interfaces.
	var entries []vmacARPEntry
	var links []string
	for _, r := range spared {
		links = append(links, r.Name)
		if r.IPv6 {
			continue
		}
		for _, e := range handed {
			if e.Interface != r.Parent || e.VRID != r.VRID || e.IPv6 {
				continue
			}
			for _, p := range e.Addresses {
				entries = append(entries, vmacARPEntry{parent: r.Parent, addr: p.Addr(), primary: r.Primary})
			}
		}
	}
	if _, err := rebuildVMACFilter(entries, links); err != nil {
		errs = append(errs, err)
	}
	return spared, removed, errors.Join(errs...)
}
