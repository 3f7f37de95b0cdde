// Command image builds kube-vrrp's release image without a container engine: the image the
// Dockerfile describes (user 65532:65532, /kube-vrrp with the file capabilities
// cap_net_admin,cap_net_raw=ep, entrypoint and labels), on a base of the files of
// gcr.io/distroless/static-debian12:nonroot that the agent uses, made here (layer.go), as one
// tar archive: an OCI image layout that `ctr images import` and skopeo (oci-archive:) read,
// with a Docker manifest.json for `docker load`. The same binaries, version, commit, time and
// CA certificates give the same archive, byte for byte.
//
//	go run ./hack/image --ref ghcr.io/kube-vrrp/kube-vrrp:v0.1.0 --version v0.1.0 --commit 1a2b3c4 \
//	    --binary linux/amd64=bin/image/linux-amd64/kube-vrrp -o bin/kube-vrrp-image.tar
//
// `make image` builds the binaries (CGO_ENABLED=0, -trimpath, the Makefile's LDFLAGS) and runs
// it. Its test (image_test.go) holds it to the Dockerfile.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// binaries is the repeated --binary PLATFORM=PATH.
type binaries []Binary

func (b *binaries) String() string { return fmt.Sprint(*b) }

func (b *binaries) Set(s string) error {
	plat, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return errors.New("want PLATFORM=PATH, e.g. linux/amd64=bin/kube-vrrp")
	}
	p, err := v1.ParsePlatform(plat)
	if err != nil {
		return err
	}
	if p.OS != "linux" || p.Architecture == "" {
		return fmt.Errorf("platform %q: want linux/ARCH", plat)
	}
	*b = append(*b, Binary{Platform: *p, Path: path})
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var (
		o     Options
		bins  binaries
		out   = fs.String("o", "bin/kube-vrrp-image.tar", "the archive to write")
		epoch = fs.Int64("source-date-epoch", envEpoch(), "the time of every file and of the image, in seconds since 1970 (default $SOURCE_DATE_EPOCH, else 0)")
	)
	fs.StringVar(&o.Ref, "ref", "", "the image's name: registry/repository:tag")
	fs.StringVar(&o.Version, "version", "", "the label org.opencontainers.image.version (the binary's version)")
	fs.StringVar(&o.Commit, "commit", "", "the label org.opencontainers.image.revision (the binary's commit)")
	fs.StringVar(&o.CACerts, "ca-certs", "/usr/share/ca-certificates/mozilla", "the CA certificates (*.crt) of the bundle: Debian's ca-certificates as shipped")
	fs.StringVar(&o.CACopyright, "ca-copyright", "/usr/share/doc/ca-certificates/copyright", "their copyright file")
	fs.Var(&bins, "binary", "PLATFORM=PATH: a static kube-vrrp binary for linux/ARCH (repeat for each platform; the first is the archive's Docker image)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *epoch < 0 {
		return fmt.Errorf("source-date-epoch %d: want 0 or more", *epoch)
	}
	o.Binaries = bins
	o.Created = time.Unix(*epoch, 0).UTC()
	start := time.Now()
	b, err := Build(o)
	if err != nil {
		return err
	}
	var archive bytes.Buffer
	if err := b.WriteArchive(&archive, o.Created); err != nil {
		return err
	}
	if err := writeFile(*out, archive.Bytes()); err != nil {
		return err
	}
	fmt.Printf("%s: %s, %d bytes, in %.1fs\n", *out, b.Ref(), archive.Len(), time.Since(start).Seconds())
	if b.Index != nil {
		h, err := b.Index.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("  index       %s\n", h)
	}
	for _, pi := range b.Images {
		h, err := pi.Image.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("  %-11s %s\n", pi.Platform.String(), h)
		layers, err := pi.Image.Layers()
		if err != nil {
			return err
		}
		for i, l := range layers {
			h, err := l.Digest()
			if err != nil {
				return err
			}
			size, err := l.Size()
			if err != nil {
				return err
			}
			fmt.Printf("    layer %d %s (%d bytes)\n", i, h, size)
		}
	}
	fmt.Printf("load it with `ctr -n k8s.io images import %s` (each node), `docker load -i %s`,\nor push it: `skopeo copy oci-archive:%s docker://%s`\n", *out, *out, *out, o.Ref)
	return nil
}

func envEpoch() int64 {
	n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// writeFile replaces path with data at once (a temporary file renamed), mode 0644.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
