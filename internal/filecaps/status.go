package filecaps

import (
	"strconv"
	"strings"
)

// Creds are a process's credentials as the kernel reports them in /proc/PID/status.
type Creds struct {
	// UID is the Uid line's real, effective, saved and filesystem uids, as "r/e/s/f".
	UID                            string
	CapEff, CapPrm, CapBnd, CapAmb uint64
	NoNewPrivs                     bool
}

// ParseStatus reads the credentials out of the text of /proc/PID/status.
func ParseStatus(status []byte) Creds {
	var c Creds
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		hex := func() uint64 { n, _ := strconv.ParseUint(v, 16, 64); return n }
		switch k {
		case "Uid":
			c.UID = strings.Join(strings.Fields(v), "/")
		case "CapEff":
			c.CapEff = hex()
		case "CapPrm":
			c.CapPrm = hex()
		case "CapBnd":
			c.CapBnd = hex()
		case "CapAmb":
			c.CapAmb = hex()
		case "NoNewPrivs":
			c.NoNewPrivs = v == "1"
		}
	}
	return c
}
