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

// ImageCaps are the file capabilities of the image's binary: NET_ADMIN and NET_RAW, permitted
// and effective (the Dockerfile's `setcap cap_net_admin,cap_net_raw=ep`).
const ImageCaps uint64 = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW

// XattrName is the extended attribute that holds a file's capabilities.
const XattrName = "security.capability"

// <linux/capability.h>
const (
	vfsCapRevision2      = 0x02000000
	vfsCapFlagsEffective = 0x000001
)

// Xattr is the value of XattrName that gives a file the permitted capabilities caps with the
// effective bit and no inheritable ones, byte for byte what `setcap CAPS=ep` writes outside a
// user namespace: a struct vfs_cap_data of revision 2 (<linux/capability.h>), little-endian
// 32-bit words: magic_etc, then permitted and inheritable for capabilities 0..31, then for
// 32..63. The image's layer carries Xattr(ImageCaps) (hack/image).
func Xattr(caps uint64) []byte {
	var b bytes.Buffer
	for _, v := range []uint32{
		vfsCapRevision2 | vfsCapFlagsEffective,
		uint32(caps), 0, // permitted, inheritable: capabilities 0..31
		uint32(caps >> 32), 0, // 32..63
	} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes()
}

// SetFileCaps gives the file at path the file capabilities the Dockerfile gives the image's
// binary, as `setcap cap_net_admin,cap_net_raw=ep` does: Xattr(ImageCaps) in the
// security.capability extended attribute. It needs CAP_SETFCAP.
func SetFileCaps(path string) error {
	return setFileCaps(path, ImageCaps)
}

func setFileCaps(path string, permitted uint64) error {
	if err := unix.Setxattr(path, XattrName, Xattr(permitted), 0); err != nil {
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
