package filecaps

import (
	"bytes"
	"encoding/binary"

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
