package filecaps

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// AgentID is the uid and gid of the image's user (distroless nonroot: the Dockerfile's
// USER 65532:65532, the chart's runAsUser and runAsGroup).
const AgentID = 65532

// <linux/capability.h>
const (
	vfsCapRevision2      = 0x02000000
	vfsCapFlagsEffective = 0x000001
)

// SetFileCaps gives the file at path the file capabilities the Dockerfile gives the image's
// binary, as `setcap cap_net_admin,cap_net_raw=ep` does: a struct vfs_cap_data (revision 2)
// in the security.capability extended attribute. It needs CAP_SETFCAP.
func SetFileCaps(path string) error {
	return setFileCaps(path, 1<<unix.CAP_NET_ADMIN|1<<unix.CAP_NET_RAW)
}

func setFileCaps(path string, permitted uint64) error {
	var b bytes.Buffer
	for _, v := range []uint32{
		vfsCapRevision2 | vfsCapFlagsEffective,
		uint32(permitted), 0, // permitted, inheritable: capabilities 0..31
		uint32(permitted >> 32), 0, // 32..63
	} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	if err := unix.Setxattr(path, "security.capability", b.Bytes(), 0); err != nil {
		return fmt.Errorf("set file capabilities on %s: %w", path, err)
	}
	return nil
}

// Command runs bin (which carries SetFileCaps's file capabilities and which uid 65532 may
// execute) as the chart's DaemonSet runs the agent under containerd or CRI-O: uid and gid
// 65532 without supplementary groups, a bounding set of NET_ADMIN and NET_RAW, no inheritable
// capabilities, no_new_privs; the agent then holds exactly NET_ADMIN and NET_RAW. It uses
// util-linux's setpriv (Debian: essential) and must be started as root.
func Command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	id := strconv.Itoa(AgentID)
	argv := append([]string{
		"--reuid=" + id, "--regid=" + id, "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all,+net_admin,+net_raw", "--no-new-privs",
		"--", bin,
	}, args...)
	return exec.CommandContext(ctx, "setpriv", argv...)
}
