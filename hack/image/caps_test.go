package main

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Reading file capabilities both ways, independently of internal/filecaps's encoder: from
// setcap's text (the Dockerfile's) and from the security.capability bytes (the layer's).

// capNames are the capabilities' names in the order of their numbers (<linux/capability.h>).
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// fileCaps is a decoded struct vfs_cap_data (vfs_ns_cap_data for revision 3).
type fileCaps struct {
	revision               int // 1, 2 or 3
	effective              bool
	permitted, inheritable uint64
	rootID                 uint32 // revision 3: the user namespace's root the capabilities are for
}

func (c fileCaps) String() string {
	names := func(set uint64) string {
		var n []string
		for i, name := range capNames {
			if set&(1<<i) != 0 {
				n = append(n, "cap_"+name)
			}
		}
		return strings.Join(n, ",")
	}
	return fmt.Sprintf("revision %d, effective %v, permitted [%s], inheritable [%s], rootid %d",
		c.revision, c.effective, names(c.permitted), names(c.inheritable), c.rootID)
}

// parseSetcap reads the capabilities of `setcap TEXT` (cap_text_formats(7): clauses of
// comma-separated names, an operator = or +, and flags e, i, p), as the kernel then holds them
// for a file set outside a user namespace: revision 2.
func parseSetcap(text string) (fileCaps, error) {
	c := fileCaps{revision: 2}
	for _, clause := range strings.Fields(text) {
		i := strings.IndexAny(clause, "=+")
		if i < 0 || strings.ContainsAny(clause[i+1:], "=+-") {
			return c, fmt.Errorf("%q: want NAMES=FLAGS or NAMES+FLAGS", clause)
		}
		var set uint64
		for _, n := range strings.Split(clause[:i], ",") {
			num := -1
			for j, name := range capNames {
				if n == "cap_"+name {
					num = j
				}
			}
			if num < 0 {
				return c, fmt.Errorf("%q: unknown capability %q", clause, n)
			}
			set |= 1 << num
		}
		for _, f := range clause[i+1:] {
			switch f {
			case 'e':
				c.effective = true
			case 'p':
				c.permitted |= set
			case 'i':
				c.inheritable |= set
			default:
				return c, fmt.Errorf("%q: flag %q", clause, f)
			}
		}
	}
	return c, nil
}

// decodeVFSCap reads the value of a security.capability attribute.
func decodeVFSCap(b []byte) (fileCaps, error) {
	var c fileCaps
	if len(b) < 4 {
		return c, fmt.Errorf("%d bytes", len(b))
	}
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }
	magic := word(0)
	c.effective = magic&0x1 != 0
	if magic&^0xff000001 != 0 {
		return c, fmt.Errorf("magic_etc %#x: unknown flags", magic)
	}
	switch magic & 0xff000000 {
	case 0x01000000:
		c.revision = 1
		if len(b) != 12 {
			return c, fmt.Errorf("revision 1 in %d bytes, want 12", len(b))
		}
		c.permitted, c.inheritable = uint64(word(1)), uint64(word(2))
		return c, nil
	case 0x02000000:
		c.revision = 2
		if len(b) != 20 {
			return c, fmt.Errorf("revision 2 in %d bytes, want 20", len(b))
		}
	case 0x03000000:
		c.revision = 3
		if len(b) != 24 {
			return c, fmt.Errorf("revision 3 in %d bytes, want 24", len(b))
		}
		c.rootID = word(5)
	default:
		return c, fmt.Errorf("magic_etc %#x: unknown revision", magic)
	}
	c.permitted = uint64(word(1)) | uint64(word(3))<<32
	c.inheritable = uint64(word(2)) | uint64(word(4))<<32
	return c, nil
}

func TestCapNames(t *testing.T) {
	for num, name := range map[int]string{
		unix.CAP_CHOWN: "chown", unix.CAP_NET_ADMIN: "net_admin", unix.CAP_NET_RAW: "net_raw",
		unix.CAP_SETFCAP: "setfcap", unix.CAP_BPF: "bpf", unix.CAP_CHECKPOINT_RESTORE: "checkpoint_restore",
	} {
		if capNames[num] != name {
			t.Errorf("capNames[%d] = %q, want %q", num, capNames[num], name)
		}
	}
	if len(capNames) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d names, want %d", len(capNames), unix.CAP_LAST_CAP+1)
	}
}

func TestSetcapText(t *testing.T) {
	for _, c := range []struct {
		text string
		want fileCaps
		err  bool
	}{
		{text: "cap_net_admin,cap_net_raw=ep", want: fileCaps{revision: 2, effective: true, permitted: 1<<12 | 1<<13}},
		{text: "cap_net_raw=p", want: fileCaps{revision: 2, permitted: 1 << 13}},
		{text: "cap_bpf+ei cap_chown=p", want: fileCaps{revision: 2, effective: true, inheritable: 1 << 39, permitted: 1}},
		{text: "cap_net_admin", err: true},
		{text: "cap_nonsense=ep", err: true},
		{text: "cap_net_raw=ex", err: true},
	} {
		got, err := parseSetcap(c.text)
		if (err != nil) != c.err || err == nil && got != c.want {
			t.Errorf("parseSetcap(%q) = %v, %v; want %v (error %v)", c.text, got, err, c.want, c.err)
		}
	}
}

func TestDecodeVFSCap(t *testing.T) {
	le := func(words ...uint32) []byte {
		b := make([]byte, 4*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		want fileCaps
		err  bool
	}{
		{"v2 ep", le(0x02000001, 0x3000, 0, 0, 0), fileCaps{revision: 2, effective: true, permitted: 0x3000}, false},
		{"v2 upper word", le(0x02000000, 0, 0x1, 0x80, 0), fileCaps{revision: 2, permitted: 1 << 39, inheritable: 1}, false},
		{"v3 rootid", le(0x03000001, 0x3000, 0, 0, 0, 100000), fileCaps{revision: 3, effective: true, permitted: 0x3000, rootID: 100000}, false},
		{"v1", le(0x01000001, 0x3000, 0), fileCaps{revision: 1, effective: true, permitted: 0x3000}, false},
		{"v2 short", le(0x02000001, 0x3000, 0, 0), fileCaps{}, true},
		{"unknown revision", le(0x04000001, 0x3000, 0, 0, 0), fileCaps{}, true},
		{"unknown flag", le(0x02000003, 0x3000, 0, 0, 0), fileCaps{}, true},
	} {
		got, err := decodeVFSCap(c.b)
		if (err != nil) != c.err || err == nil && got != c.want {
			t.Errorf("%s: decodeVFSCap(% x) = %v, %v; want %v (error %v)", c.name, c.b, got, err, c.want, c.err)
		}
	}
}
