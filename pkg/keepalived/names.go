package keepalived

import (
	"strconv"
	"strings"
)

// maxNameLen keeps names valid DNS-1123 labels (also valid probe names).
const maxNameLen = 63

// sanitizeName maps a keepalived name (VI_1, chk_haproxy, ...) to a DNS-1123 label: lower
// case, every run of other characters becomes one '-', no '-' at either end.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
		default:
			dash = true
		}
	}
	out := b.String()
	if len(out) > maxNameLen {
		out = strings.TrimRight(out[:maxNameLen], "-")
	}
	return out
}

// namer hands out distinct names: the sanitized base, or base-2, base-3, ... when taken.
type namer struct{ used map[string]bool }

func newNamer() *namer { return &namer{used: map[string]bool{}} }

// name returns a free name for base; an empty sanitized base becomes "vrid-<vrid>" (or
// "probe" when vrid is 0).
func (n *namer) name(base string, vrid int32) string {
	s := sanitizeName(base)
	if s == "" {
		if vrid > 0 {
			s = "vrid-" + strconv.Itoa(int(vrid))
		} else {
			s = "probe"
		}
	}
	cand := s
	for i := 2; n.used[cand]; i++ {
		suffix := "-" + strconv.Itoa(i)
		cand = strings.TrimRight(s[:min(len(s), maxNameLen-len(suffix))], "-") + suffix
	}
	n.used[cand] = true
	return cand
}

// secretName is the Secret holding a VirtualIP's password.
func secretName(vip string) string { return vip + "-vrrp-auth" }
