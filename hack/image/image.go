package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
)

// What the Dockerfile says, and what its base image, gcr.io/distroless/static-debian12:nonroot,
// gives (WorkingDir, Env). image_test.go compares each with the Dockerfile.
const (
	// DockerfileBase is the Dockerfile's base image, which this one reproduces in part (baseFiles).
	DockerfileBase = "gcr.io/distroless/static-debian12:nonroot"
	binaryPath     = "/kube-vrrp"
	mainPackage    = "github.com/kube-vrrp/kube-vrrp/cmd/kube-vrrp"
	source         = "https://github.com/kube-vrrp/kube-vrrp"
	license        = "Apache-2.0" // hack/boilerplate.go.txt
)

var (
	user       = fmt.Sprintf("%d:%d", filecaps.AgentID, filecaps.AgentID)
	entrypoint = []string{binaryPath}
	cmd        = []string{"agent"}
	env        = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=" + caBundlePath,
	}
)

// Options say what to build.
type Options struct {
	// Ref names the image: registry/repository:tag, all three given
	// (ghcr.io/kube-vrrp/kube-vrrp:v0.1.0).
	Ref string
	// Version and Commit go to the labels org.opencontainers.image.version and .revision.
	Version, Commit string
	// Created is the time of every file and of the image (SOURCE_DATE_EPOCH).
	Created time.Time
	// Binaries are the static kube-vrrp binaries, one per platform; the first one's image is
	// also the archive's Docker image (manifest.json).
	Binaries []Binary
	// CACerts is the directory of the CA certificates (*.crt) for the bundle, CACopyright their
	// copyright file: Debian's ca-certificates package.
	CACerts, CACopyright string
}

// Binary is a kube-vrrp binary for a platform.
type Binary struct {
	Platform v1.Platform
	Path     string
}

// Built is the image, one per platform, and how the archive names it.
type Built struct {
	ref        name.Tag
	refText    string
	containerd string // the fully qualified name containerd gives it (docker.io, not index.docker.io)
	Images     []PlatformImage
	// Index lists the platforms' images when there are several; nil for one.
	Index v1.ImageIndex
}

// PlatformImage is the image of one platform.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// Build makes the image of each binary: the base layer (baseFiles) and the binary's layer
// (appFiles), with the Dockerfile's config.
func Build(o Options) (*Built, error) {
	ref, err := name.NewTag(o.Ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image reference %q (want registry/repository:tag): %w", o.Ref, err)
	}
	for _, v := range []struct{ what, s string }{{"version", o.Version}, {"commit", o.Commit}} {
		if err := labelValue(v.s); err != nil {
			return nil, fmt.Errorf("%s %q: %w", v.what, v.s, err)
		}
	}
	if len(o.Binaries) == 0 {
		return nil, fmt.Errorf("no binary")
	}
	registry := ref.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	b := &Built{
		ref:        ref,
		refText:    o.Ref,
		containerd: registry + "/" + ref.RepositoryStr() + ":" + ref.TagStr(),
	}
	created := o.Created.UTC()
	baseEntries, err := baseFiles(o.CACerts, o.CACopyright)
	if err != nil {
		return nil, err
	}
	baseTar, err := layerTar(baseEntries, created)
	if err != nil {
		return nil, err
	}
	base, err := gzipLayer(baseTar)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, bin := range o.Binaries {
		p := bin.Platform
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %s twice", p)
		}
		seen[p.String()] = true
		data, err := os.ReadFile(bin.Path)
		if err != nil {
			return nil, err
		}
		if err := checkBinary(data, p); err != nil {
			return nil, fmt.Errorf("%s: %w", bin.Path, err)
		}
		appTar, err := layerTar(appFiles(data), created)
		if err != nil {
			return nil, err
		}
		app, err := gzipLayer(appTar)
		if err != nil {
			return nil, err
		}
		img, err := image(p, base, app, created, o.Version, o.Commit)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		b.Images = append(b.Images, PlatformImage{Platform: p, Image: img})
	}
	if len(b.Images) > 1 {
		var adds []mutate.IndexAddendum
		for _, pi := range b.Images {
			p := pi.Platform
			adds = append(adds, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{Platform: &p}})
		}
		b.Index = mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	}
	return b, nil
}

// labelValue refuses a version or commit that is empty, longer than a tag may be, or holds
// anything but printable characters without spaces.
func labelValue(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("want 1 to 128 characters")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("want printable characters without spaces")
		}
	}
	return nil
}

// checkBinary refuses what cannot run in the image: no static Go build of kube-vrrp for the
// platform (the image has no C library).
func checkBinary(data []byte, p v1.Platform) error {
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a Go binary: %w", err)
	}
	if bi.Path != mainPackage {
		return fmt.Errorf("a build of %s, want %s", bi.Path, mainPackage)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != p.OS || settings["GOARCH"] != p.Architecture {
		return fmt.Errorf("built for %s/%s, want %s/%s", settings["GOOS"], settings["GOARCH"], p.OS, p.Architecture)
	}
	if settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("built with CGO_ENABLED=%q, want 0: the image has no C library", settings["CGO_ENABLED"])
	}
	return nil
}

// Labels are the image's labels, as the Dockerfile's LABEL gives them.
func Labels(version, commit string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": commit,
		"org.opencontainers.image.licenses": license,
	}
}

func image(p v1.Platform, base, app v1.Layer, created time.Time, version, commit string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "hack/image: the files of " + DockerfileBase + " kube-vrrp uses (users, /home/nonroot, /tmp, CA certificates)",
		}},
		mutate.Addendum{Layer: app, History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "COPY " + binaryPath + " # setcap cap_net_admin,cap_net_raw=ep",
		}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Variant = p.Architecture, p.OS, p.Variant
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       user,
		Env:        env,
		Entrypoint: entrypoint,
		Cmd:        cmd,
		WorkingDir: homeDir,
		Labels:     Labels(version, commit),
	}
	return mutate.ConfigFile(img, cf)
}

// WriteArchive writes the images as one tar archive of an OCI image layout (oci-layout,
// index.json, blobs/sha256/*), which ctr images import and skopeo (oci-archive:) read, with a
// Docker manifest.json beside it for docker load (the first platform's image: Docker loads
// one). index.json names the image for containerd (io.containerd.image.name, the reference
// in full) and for OCI tools (org.opencontainers.image.ref.name, the tag). Everything is
// sorted and dated created: the same images give the same bytes.
func (b *Built) WriteArchive(w io.Writer, created time.Time) error {
	blobs := map[string][]byte{}
	add := func(h v1.Hash, data []byte) {
		blobs["blobs/"+h.Algorithm+"/"+h.Hex] = data
	}
	addRaw := func(r interface {
		Digest() (v1.Hash, error)
		RawManifest() ([]byte, error)
	}) error {
		h, err := r.Digest()
		if err != nil {
			return err
		}
		raw, err := r.RawManifest()
		if err != nil {
			return err
		}
		add(h, raw)
		return nil
	}
	var docker tarball.Manifest
	for i, pi := range b.Images {
		if err := addRaw(pi.Image); err != nil {
			return err
		}
		cfgName, err := pi.Image.ConfigName()
		if err != nil {
			return err
		}
		cfg, err := pi.Image.RawConfigFile()
		if err != nil {
			return err
		}
		add(cfgName, cfg)
		layers, err := pi.Image.Layers()
		if err != nil {
			return err
		}
		d := tarball.Descriptor{Config: "blobs/" + cfgName.Algorithm + "/" + cfgName.Hex, RepoTags: []string{b.refText}}
		for _, l := range layers {
			h, err := l.Digest()
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			add(h, data)
			d.Layers = append(d.Layers, "blobs/"+h.Algorithm+"/"+h.Hex)
		}
		if i == 0 {
			docker = append(docker, d)
		}
	}
	// The one entry of index.json: the image, or the index of the platforms' images.
	var top *v1.Descriptor
	if b.Index != nil {
		if err := addRaw(b.Index); err != nil {
			return err
		}
		d, err := descriptor(b.Index)
		if err != nil {
			return err
		}
		top = d
	} else {
		d, err := descriptor(b.Images[0].Image)
		if err != nil {
			return err
		}
		top = d
		p := b.Images[0].Platform
		top.Platform = &p
	}
	top.Annotations = map[string]string{
		"io.containerd.image.name":          b.containerd,
		"org.opencontainers.image.ref.name": b.ref.TagStr(),
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     []v1.Descriptor{*top},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(docker)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"oci-layout":    []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":    index,
		"manifest.json": manifest,
	}
	for n, data := range blobs {
		files[n] = data
	}
	names := make([]string, 0, len(files)+2)
	for n := range files {
		names = append(names, n)
	}
	names = append(names, "blobs/", "blobs/sha256/")
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: created.UTC(), Size: int64(len(files[n]))}
		if n[len(n)-1] == '/' {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// descriptor is what an index says of a manifest: media type, size, digest (without
// partial.Descriptor's artifactType, which marks artifacts, not images).
func descriptor(m interface {
	MediaType() (types.MediaType, error)
	RawManifest() ([]byte, error)
}) (*v1.Descriptor, error) {
	mt, err := m.MediaType()
	if err != nil {
		return nil, err
	}
	raw, err := m.RawManifest()
	if err != nil {
		return nil, err
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &v1.Descriptor{MediaType: mt, Size: size, Digest: h}, nil
}

// Ref is the image's reference as containerd names it after an import: the registry in full
// (docker.io for Docker Hub).
func (b *Built) Ref() string { return b.containerd }
