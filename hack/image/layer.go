package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
)

// file is one entry of a layer: a directory or a regular file.
type file struct {
	path     string // absolute, clean: "/etc/passwd"
	dir      bool
	mode     int64 // permission bits, with the sticky bit (0o1000) where it applies
	uid, gid int
	data     []byte
	xattrs   map[string][]byte // extended attributes, as PAX SCHILY.xattr records
}

func dir(p string, mode int64) file { return file{path: p, dir: true, mode: mode} }

func reg(p string, mode int64, data []byte) file { return file{path: p, mode: mode, data: data} }

// layerTar writes files as a layer's tar stream, reproducibly: entries sorted by name, every
// time the same (mtime), numeric owners only, no access or change times. A directory's entry
// comes before its contents; every parent must be "/" or in files.
func layerTar(files []file, mtime time.Time) ([]byte, error) {
	names := make(map[string]bool, len(files))
	for _, f := range files {
		if !path.IsAbs(f.path) || path.Clean(f.path) != f.path || f.path == "/" {
			return nil, fmt.Errorf("layer entry %q: want an absolute, clean path below /", f.path)
		}
		if names[f.path] {
			return nil, fmt.Errorf("layer entry %q twice", f.path)
		}
		names[f.path] = true
	}
	for _, f := range files {
		if p := path.Dir(f.path); p != "/" && !names[p] {
			return nil, fmt.Errorf("layer entry %q: its directory %q is not in the layer", f.path, p)
		}
	}
	sorted := slices.Clone(files)
	sort.Slice(sorted, func(i, j int) bool { return tarName(sorted[i]) < tarName(sorted[j]) })
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range sorted {
		h := &tar.Header{
			Name:    tarName(f),
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if len(f.xattrs) > 0 {
			h.Format = tar.FormatPAX
			h.PAXRecords = make(map[string]string, len(f.xattrs))
			for k, v := range f.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = string(v)
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.path, err)
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tarName is the name of f in a layer: relative to the root, a directory's with a slash.
func tarName(f file) string {
	n := strings.TrimPrefix(f.path, "/")
	if f.dir {
		n += "/"
	}
	return n
}

// gzipLayer compresses a layer's tar stream (compress/gzip, default level, a header without
// name or time: the same stream gives the same bytes) into an OCI layer.
func gzipLayer(tarStream []byte) (v1.Layer, error) {
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarStream); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := z.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// The users of the base: distroless's (root, nobody, nonroot), nonroot being the image's
// USER 65532:65532 (filecaps.AgentID) with its home, the image's working directory.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"tty:x:5:\n" +
		"staff:x:50:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads the hosts line: the pod's /etc/hosts, then DNS.
	nsswitch = "passwd: files\n" +
		"group: files\n" +
		"hosts: files dns\n" +
		"networks: files\n" +
		"protocols: files\n" +
		"services: files\n"
	homeDir = "/home/nonroot"
	// caBundlePath is where the base keeps the CA certificates (SSL_CERT_FILE).
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// baseFiles are the files of the base layer: what the Dockerfile's base,
// gcr.io/distroless/static-debian12:nonroot, gives a static Go program and this one can
// see: the users and groups, the home of nonroot (its working directory, 0700), /root,
// /tmp (1777), nsswitch.conf, and Debian's CA certificates with their copyright. Left out,
// because kube-vrrp reads none of it: tzdata (it logs in UTC), netbase (/etc/services and
// /etc/protocols: it names ports and protocols by number), media-types, base-files and
// os-release, and the package records under /var/lib/dpkg.
//
// The certificates are those of Debian's ca-certificates package as shipped
// (caDir, /usr/share/ca-certificates/mozilla), never the host's /etc/ssl/certs, which holds
// whatever the machine's administrator added.
func baseFiles(caDir, caCopyright string) ([]file, error) {
	bundle, err := caBundle(caDir)
	if err != nil {
		return nil, err
	}
	copyright, err := os.ReadFile(caCopyright)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates' copyright (Debian's ca-certificates; make deps): %w", err)
	}
	home := dir(homeDir, 0o700)
	home.uid, home.gid = filecaps.AgentID, filecaps.AgentID
	return []file{
		dir("/etc", 0o755),
		reg("/etc/group", 0o644, []byte(group)),
		reg("/etc/nsswitch.conf", 0o644, []byte(nsswitch)),
		reg("/etc/passwd", 0o644, []byte(passwd)),
		dir("/etc/ssl", 0o755),
		dir("/etc/ssl/certs", 0o755),
		reg(caBundlePath, 0o644, bundle),
		dir("/home", 0o755),
		home,
		dir("/root", 0o700),
		dir("/tmp", 0o1777),
		dir("/usr", 0o755),
		dir("/usr/share", 0o755),
		dir("/usr/share/doc", 0o755),
		dir("/usr/share/doc/ca-certificates", 0o755),
		reg("/usr/share/doc/ca-certificates/copyright", 0o644, copyright),
	}, nil
}

// caBundle concatenates the certificates (*.crt, PEM) of dir in the order of their names, as
// update-ca-certificates does, after checking that each file holds certificates only.
func caBundle(dir string) ([]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var bundle []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rest, n := b, 0
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("%s: a PEM block of type %q, want CERTIFICATE", p, block.Type)
			}
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			n++
		}
		if n == 0 || len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%s: not a PEM file of certificates", p)
		}
		bundle = append(bundle, b...)
		if !bytes.HasSuffix(bundle, []byte("\n")) {
			bundle = append(bundle, '\n')
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no CA certificates (*.crt) in %s: install Debian's ca-certificates (make deps)", dir)
	}
	return bundle, nil
}

// appFiles is the layer of the Dockerfile's COPY --from=build /out/kube-vrrp /kube-vrrp: the
// binary, root's, mode 0755 (go build's output), with the file capabilities its build stage's
// setcap gives it.
func appFiles(binary []byte) []file {
	f := reg(binaryPath, 0o755, binary)
	f.xattrs = map[string][]byte{filecaps.XattrName: filecaps.Xattr(filecaps.ImageCaps)}
	return []file{f}
}
