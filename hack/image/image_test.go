package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kube-vrrp/kube-vrrp/internal/filecaps"
)

// The image the tests look at: `make image` with these, once per test binary.
const (
	testVersion = "v0.0.0-imagetest"
	testCommit  = "0123abc"
	testEpoch   = 1700000000
	testRef     = "registry.test/kube-vrrp/kube-vrrp:v0.0.0-imagetest"
)

var testPlatform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

var made struct {
	once     sync.Once
	bin      string // make's BIN
	archive  string
	err      error
	duration time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range []string{made.bin, read.dir} {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// repoRoot is the module's root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// makeImage runs `make image` into a temporary BIN (once) and returns the archive.
func makeImage(t testing.TB) string {
	t.Helper()
	made.once.Do(func() {
		made.bin, made.err = os.MkdirTemp("", "kube-vrrp-image-test-")
		if made.err != nil {
			return
		}
		start := time.Now()
		cmd := exec.Command("make", "-s", "-C", repoRoot(t), "image",
			"BIN="+made.bin, "VERSION="+testVersion, "COMMIT="+testCommit,
			"SOURCE_DATE_EPOCH="+strconv.Itoa(testEpoch), "IMAGE="+testRef,
			"IMAGE_PLATFORMS=linux/"+runtime.GOARCH)
		out, err := cmd.CombinedOutput()
		made.duration = time.Since(start)
		if err != nil {
			made.err = fmt.Errorf("make image: %v\n%s", err, out)
			return
		}
		made.archive = filepath.Join(made.bin, "kube-vrrp-image.tar")
		t.Logf("make image: %.1fs\n%s", made.duration.Seconds(), out)
	})
	if made.err != nil {
		t.Fatal(made.err)
	}
	return made.archive
}

// extractTo unpacks the archive (an OCI layout) into dir.
func extractTo(dir, archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("archive entry %q outside the archive", h.Name)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
		default:
			err = fmt.Errorf("archive entry %q of type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

var read struct {
	once, validate sync.Once
	dir            string
	validateErr    error
}

// ociImage reads the archive (once) as an OCI layout (go-containerregistry's layout package),
// checks it with validate.Index (every blob's digest and size, every layer's diff ID), and
// returns the image for testPlatform with index.json's one descriptor.
func ociImage(t testing.TB, archive string) (v1.Image, v1.Descriptor) {
	t.Helper()
	var err error
	read.once.Do(func() {
		if read.dir, err = os.MkdirTemp("", "kube-vrrp-image-layout-"); err == nil {
			err = extractTo(read.dir, archive)
		}
	})
	if err != nil || read.dir == "" {
		t.Fatalf("extract %s: %v", archive, err)
	}
	idx, err := layout.ImageIndexFromPath(read.dir)
	if err != nil {
		t.Fatal(err)
	}
	read.validate.Do(func() { read.validateErr = validate.Index(idx) })
	if read.validateErr != nil {
		t.Fatalf("validate.Index: %v", read.validateErr)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.MediaType.IsIndex() {
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := child.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range cm.Manifests {
			if d.Platform != nil && d.Platform.Equals(testPlatform) {
				img, err := child.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				return img, desc
			}
		}
		t.Fatalf("no image for %s in the index", testPlatform)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, desc
}

type layerEntry struct {
	hdr  *tar.Header
	data []byte
}

var layerCache = struct {
	sync.Mutex
	m map[v1.Hash][]layerEntry
}{m: map[v1.Hash][]layerEntry{}}

// entries reads a layer's tar stream (once per layer digest: the entries are not to be changed).
func entries(t testing.TB, l v1.Layer) []layerEntry {
	t.Helper()
	h, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	layerCache.Lock()
	defer layerCache.Unlock()
	if e, ok := layerCache.m[h]; ok {
		return e
	}
	e := readEntries(t, l)
	layerCache.m[h] = e
	return e
}

func readEntries(t testing.TB, l v1.Layer) []layerEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []layerEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerEntry{hdr: h, data: b})
	}
}

// baseImage is what the Dockerfile's base image gives the final one: its config (the final
// stage has no WORKDIR or ENV of its own) and the files compare checks.
type baseImage struct {
	workdir string
	env     []string
}

// bases: gcr.io/distroless/static-debian12:nonroot is user nonroot (65532, home
// /home/nonroot, mode 0700), its working directory; PATH and SSL_CERT_FILE (its CA bundle).
var bases = map[string]baseImage{
	"gcr.io/distroless/static-debian12:nonroot": {
		workdir: "/home/nonroot",
		env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
	},
}

// compare lists where the image differs from what the Dockerfile d says, for platform.
func compare(t testing.TB, d *dockerImage, img v1.Image, platform v1.Platform) []string {
	t.Helper()
	var diffs []string
	bad := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	base, ok := bases[d.base]
	if !ok {
		bad("the Dockerfile's base is %s, which image_test.go does not describe (bases); hack/image reproduces %s", d.base, DockerfileBase)
		return diffs
	}
	if d.base != DockerfileBase {
		bad("the Dockerfile's base is %s, hack/image reproduces %s (DockerfileBase, baseFiles)", d.base, DockerfileBase)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != d.user {
		bad("USER %s, the image's User %q", d.user, c.User)
	}
	if !slices.Equal(c.Entrypoint, d.entrypoint) {
		bad("ENTRYPOINT %q, the image's Entrypoint %q", d.entrypoint, c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, d.cmd) {
		bad("CMD %q, the image's Cmd %q", d.cmd, c.Cmd)
	}
	workdir := base.workdir
	if d.workdir != "" {
		workdir = d.workdir
	}
	if c.WorkingDir != workdir {
		bad("WORKDIR %s (the base's unless the Dockerfile says), the image's WorkingDir %q", workdir, c.WorkingDir)
	}
	if env := append(slices.Clone(base.env), d.env...); !slices.Equal(c.Env, env) {
		bad("ENV %q (the base's, then the Dockerfile's), the image's Env %q", env, c.Env)
	}
	if !maps.Equal(c.Labels, d.labels) {
		bad("LABEL %v, the image's Labels %v", d.labels, c.Labels)
	}
	if cf.OS != platform.OS || cf.Architecture != platform.Architecture || cf.Variant != platform.Variant {
		bad("platform %s/%s/%s, want %s", cf.OS, cf.Architecture, cf.Variant, platform)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1+d.layers {
		bad("the final stage adds %d layers to its base, the image has %d on its base layer", d.layers, len(layers)-1)
	}
	if len(d.copies) != 1 || len(layers) < 2 {
		bad("the final stage has %d COPY, want the one of the binary (compare knows no other)", len(d.copies))
		return diffs
	}
	cp := d.copies[0]

	// The binary: the build stage's go build output, given its capabilities by setcap, copied.
	if d.build == nil {
		bad("no go build in the stage %q of COPY --from", cp.from)
		return diffs
	}
	if len(cp.src) != 1 || cp.src[0] != d.build.out || d.setcapTarget != d.build.out {
		bad("COPY %q, go build -o %s and setcap on %s: want the same file", cp.src, d.build.out, d.setcapTarget)
	}
	if len(d.entrypoint) == 0 || d.entrypoint[0] != cp.dst {
		bad("ENTRYPOINT %q does not run the binary COPY puts at %s", d.entrypoint, cp.dst)
	}
	app := entries(t, layers[len(layers)-1])
	if len(app) != 1 || app[0].hdr.Name != strings.TrimPrefix(cp.dst, "/") {
		var names []string
		for _, e := range app {
			names = append(names, e.hdr.Name)
		}
		bad("COPY to %s: the image's last layer holds %q", cp.dst, names)
		return diffs
	}
	h := app[0].hdr
	mode := int64(0o755) // go build's output, COPY keeps it
	if cp.chmod != "" {
		if mode, err = strconv.ParseInt(cp.chmod, 8, 64); err != nil {
			bad("COPY --chmod=%s: %v", cp.chmod, err)
		}
	}
	uid, gid := 0, 0 // COPY without --chown: root's
	if cp.chown != "" {
		u, g, _ := strings.Cut(cp.chown, ":")
		uid, _ = strconv.Atoi(u)
		gid, _ = strconv.Atoi(g)
	}
	if h.Typeflag != tar.TypeReg || h.Mode != mode || h.Uid != uid || h.Gid != gid {
		bad("%s: type %c mode %#o owner %d:%d, the Dockerfile gives a regular file, mode %#o, owner %d:%d",
			cp.dst, h.Typeflag, h.Mode, h.Uid, h.Gid, mode, uid, gid)
	}
	want, err := parseSetcap(d.setcap)
	if err != nil {
		bad("setcap %s: %v", d.setcap, err)
	}
	raw, ok := h.PAXRecords["SCHILY.xattr."+filecaps.XattrName]
	got, err := decodeVFSCap([]byte(raw))
	switch {
	case !ok:
		bad("%s: no %s extended attribute, the Dockerfile's setcap gives %s", cp.dst, filecaps.XattrName, want)
	case err != nil:
		bad("%s: %s % x: %v", cp.dst, filecaps.XattrName, raw, err)
	case got != want:
		bad("%s: file capabilities %s, the Dockerfile's `setcap %s` gives %s", cp.dst, got, d.setcap, want)
	}
	bi, err := buildinfo.Read(bytes.NewReader(app[0].data))
	if err != nil {
		bad("%s: %v", cp.dst, err)
		return diffs
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if pkg := bi.Main.Path + strings.TrimPrefix(d.build.pkg, "."); bi.Path != pkg {
		bad("%s is a build of %s, the Dockerfile builds %s", cp.dst, bi.Path, pkg)
	}
	if settings["-trimpath"] != strconv.FormatBool(d.build.trimpath) {
		bad("%s built with -trimpath=%q, the Dockerfile's go build: %v", cp.dst, settings["-trimpath"], d.build.trimpath)
	}
	if settings["CGO_ENABLED"] != d.build.env["CGO_ENABLED"] {
		bad("%s built with CGO_ENABLED=%q, the Dockerfile's: %q", cp.dst, settings["CGO_ENABLED"], d.build.env["CGO_ENABLED"])
	}
	for _, diff := range checkLdflags(t, app[0].data, d.build.ldflags, platform) {
		bad("%s: the Dockerfile's -ldflags %q: %s", cp.dst, d.build.ldflags, diff)
	}
	if settings["GOOS"] != platform.OS || settings["GOARCH"] != platform.Architecture {
		bad("%s built for %s/%s, want %s", cp.dst, settings["GOOS"], settings["GOARCH"], platform)
	}

	// What the base gives: the USER's passwd and group entries, its home (the working
	// directory, its own, 0700), /tmp, the CA bundle of SSL_CERT_FILE.
	files := map[string]*layerEntry{}
	for _, l := range layers[:len(layers)-1] {
		for _, e := range entries(t, l) {
			files["/"+strings.TrimSuffix(e.hdr.Name, "/")] = &e
		}
	}
	u, g, _ := strings.Cut(d.user, ":")
	var home string
	if e := files["/etc/passwd"]; e == nil {
		bad("no /etc/passwd")
	} else {
		for _, line := range strings.Split(string(e.data), "\n") {
			if f := strings.Split(line, ":"); len(f) == 7 && f[2] == u {
				home = f[5]
				if g != "" && f[3] != g {
					bad("/etc/passwd: user %s's group is %s, USER says %s", u, f[3], g)
				}
			}
		}
		if home == "" {
			bad("/etc/passwd has no user %s (USER %s)", u, d.user)
		}
	}
	if e := files["/etc/group"]; e == nil || g != "" && !strings.Contains(string(e.data), ":x:"+g+":") {
		bad("/etc/group has no group %s (USER %s)", g, d.user)
	}
	if home != "" && home != workdir {
		bad("user %s's home is %s, the working directory %s", u, home, workdir)
	}
	if e := files[workdir]; e == nil || e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != 0o700 ||
		strconv.Itoa(e.hdr.Uid) != u || g != "" && strconv.Itoa(e.hdr.Gid) != g {
		bad("the working directory %s is not the user %s's own directory, mode 0700", workdir, d.user)
	}
	if e := files["/tmp"]; e == nil || e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != 0o1777 {
		bad("no /tmp, mode 1777")
	}
	for _, kv := range c.Env {
		if bundle, ok := strings.CutPrefix(kv, "SSL_CERT_FILE="); ok {
			if e := files[bundle]; e == nil || len(certificates(t, e.data)) < 100 {
				bad("SSL_CERT_FILE=%s: not a CA bundle (at least 100 certificates)", bundle)
			}
		}
	}
	return diffs
}

// checkLdflags says where the binary differs from what -ldflags gives it. A -trimpath build
// does not record its -ldflags (cmd/go leaves them out, as they may hold paths), so this looks
// at their effects: -s, no symbol table; -w (or -s), no DWARF; -X main.NAME=VALUE, VALUE in what
// `kube-vrrp version` prints (the flags the Dockerfile uses; any other is reported).
func checkLdflags(t testing.TB, binary []byte, ldflags string, platform v1.Platform) []string {
	t.Helper()
	var diffs []string
	var strip, noDWARF bool
	var values []string
	f := strings.Fields(ldflags)
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == "-s":
			strip, noDWARF = true, true
		case f[i] == "-w":
			noDWARF = true
		case f[i] == "-X" && i+1 < len(f):
			_, v, _ := strings.Cut(f[i+1], "=")
			values = append(values, v)
			i++
		default:
			diffs = append(diffs, fmt.Sprintf("%s: not a flag this test knows", f[i]))
		}
	}
	ef, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return append(diffs, err.Error())
	}
	var symtab, dwarf bool
	for _, s := range ef.Sections {
		symtab = symtab || s.Name == ".symtab"
		dwarf = dwarf || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_")
	}
	if symtab == strip {
		diffs = append(diffs, fmt.Sprintf("a symbol table: %v", symtab))
	}
	if dwarf == noDWARF {
		diffs = append(diffs, fmt.Sprintf("DWARF: %v", dwarf))
	}
	if platform.OS != runtime.GOOS || platform.Architecture != runtime.GOARCH {
		return diffs // not runnable here
	}
	out, err := versionOutput(t, binary)
	if err != nil {
		return append(diffs, fmt.Sprintf("kube-vrrp version: %v\n%s", err, out))
	}
	for _, v := range values {
		if !strings.Contains(string(out), v) {
			diffs = append(diffs, fmt.Sprintf("kube-vrrp version says %q, without %q", strings.TrimSpace(string(out)), v))
		}
	}
	return diffs
}

var versionCache = struct {
	sync.Mutex
	m map[[32]byte][]byte
}{m: map[[32]byte][]byte{}}

// versionOutput runs `kube-vrrp version` of binary (once per binary).
func versionOutput(t testing.TB, binary []byte) ([]byte, error) {
	t.Helper()
	sum := sha256.Sum256(binary)
	versionCache.Lock()
	defer versionCache.Unlock()
	if out, ok := versionCache.m[sum]; ok {
		return out, nil
	}
	exe := filepath.Join(t.TempDir(), "kube-vrrp")
	if err := os.WriteFile(exe, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err == nil {
		versionCache.m[sum] = out
	}
	return out, err
}

// certificates parses a PEM bundle (failing the test on anything else).
func certificates(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("%d bytes after the last certificate", len(b))
	}
	return out
}

func dockerfile(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var buildArgs = map[string]string{"VERSION": testVersion, "COMMIT": testCommit}

// The image of `make image` is the Dockerfile's: config, layers, the binary's path, mode,
// owner, file capabilities and build flags, and what the base gives.
func TestImageIsTheDockerfiles(t *testing.T) {
	img, _ := ociImage(t, makeImage(t))
	d, err := readDockerfile(dockerfile(t), buildArgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, diff := range compare(t, d, img, testPlatform) {
		t.Error(diff)
	}
}

// compare sees a change on either side: each edit of the Dockerfile below, and each change of
// the image, is reported.
func TestCompareSeesDrift(t *testing.T) {
	img, _ := ociImage(t, makeImage(t))
	text := dockerfile(t)
	for _, c := range []struct{ old, new, want string }{
		{"USER 65532:65532", "USER 1000:1000", "USER"},
		{`ENTRYPOINT ["/kube-vrrp"]`, `ENTRYPOINT ["/kube-vrrp", "agent"]`, "ENTRYPOINT"},
		{`CMD ["agent"]`, `CMD ["run"]`, "CMD"},
		{"COPY --from=build /out/kube-vrrp /kube-vrrp", "COPY --from=build /out/kube-vrrp /usr/bin/kube-vrrp", "COPY to /usr/bin/kube-vrrp"},
		{"COPY --from=build /out/kube-vrrp /kube-vrrp", "COPY --from=build --chmod=0500 /out/kube-vrrp /kube-vrrp", "mode"},
		{"COPY --from=build /out/kube-vrrp /kube-vrrp", "COPY --from=build --chown=65532:65532 /out/kube-vrrp /kube-vrrp", "owner"},
		{"RUN setcap cap_net_admin,cap_net_raw=ep", "RUN setcap cap_net_raw=ep", "file capabilities"},
		{"RUN setcap cap_net_admin,cap_net_raw=ep", "RUN setcap cap_net_admin,cap_net_raw=p", "file capabilities"},
		{`org.opencontainers.image.licenses="Apache-2.0"`, `org.opencontainers.image.licenses="MIT"`, "LABEL"},
		{"USER 65532:65532", "ENV GODEBUG=x509sha1=1\nUSER 65532:65532", "ENV"},
		{"USER 65532:65532", "WORKDIR /\nUSER 65532:65532", "WORKDIR"},
		{"USER 65532:65532", "RUN true\nUSER 65532:65532", "layers"},
		{"FROM gcr.io/distroless/static-debian12:nonroot", "FROM gcr.io/distroless/static-debian13:nonroot", "base"},
		{"-ldflags \"-s -w -X", "-ldflags \"-w -X", "symbol table"},
		{"main.version=${VERSION}", "main.version=${VERSION}-patched", "kube-vrrp version says"},
		{"CGO_ENABLED=0 go build -trimpath", "CGO_ENABLED=0 go build", "-trimpath"},
		{"./cmd/kube-vrrp\n", "./cmd/other\n", "build of"},
	} {
		if !strings.Contains(text, c.old) {
			t.Errorf("the Dockerfile has no %q: update this test's edits", c.old)
			continue
		}
		d, err := readDockerfile(strings.Replace(text, c.old, c.new, 1), buildArgs)
		if err != nil {
			t.Errorf("%q -> %q: %v", c.old, c.new, err)
			continue
		}
		diffs := compare(t, d, img, testPlatform)
		if !slices.ContainsFunc(diffs, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("Dockerfile %q -> %q: compare says %q, want a difference about %s", c.old, c.new, diffs, c.want)
		}
	}
	// The other build arguments than the image's: its labels differ.
	d, err := readDockerfile(text, map[string]string{"VERSION": "v9", "COMMIT": testCommit})
	if err != nil {
		t.Fatal(err)
	}
	if diffs := compare(t, d, img, testPlatform); len(diffs) == 0 {
		t.Error("--build-arg VERSION=v9: compare says nothing")
	}

	// The image's side.
	d, err = readDockerfile(text, buildArgs)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bin := entries(t, layers[1])[0].data
	appLayer := func(f file) v1.Layer { // gzip's fastest level: only compare reads these
		tarStream, err := layerTar([]file{f}, time.Unix(testEpoch, 0))
		if err != nil {
			t.Fatal(err)
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(tarStream)), nil
		}, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, c := range []struct {
		name string
		img  func() (v1.Image, error)
		want string
	}{
		{"user", func() (v1.Image, error) {
			cfg := *cf.Config.DeepCopy()
			cfg.User = "65532"
			return mutate.Config(img, cfg)
		}, "USER"},
		{"label", func() (v1.Image, error) {
			cfg := *cf.Config.DeepCopy()
			cfg.Labels["org.opencontainers.image.source"] = "https://example.test/fork"
			return mutate.Config(img, cfg)
		}, "LABEL"},
		{"working directory", func() (v1.Image, error) {
			cfg := *cf.Config.DeepCopy()
			cfg.WorkingDir = "/"
			return mutate.Config(img, cfg)
		}, "WORKDIR"},
		{"NET_RAW alone", func() (v1.Image, error) {
			f := appFiles(bin)[0]
			f.xattrs[filecaps.XattrName] = filecaps.Xattr(1 << 13)
			return image(testPlatform, layers[0], appLayer(f), time.Unix(testEpoch, 0), testVersion, testCommit)
		}, "file capabilities"},
		{"no capabilities", func() (v1.Image, error) {
			f := appFiles(bin)[0]
			f.xattrs = nil
			return image(testPlatform, layers[0], appLayer(f), time.Unix(testEpoch, 0), testVersion, testCommit)
		}, "no security.capability"},
		{"mode 0775", func() (v1.Image, error) {
			f := appFiles(bin)[0]
			f.mode = 0o775
			return image(testPlatform, layers[0], appLayer(f), time.Unix(testEpoch, 0), testVersion, testCommit)
		}, "mode"},
		{"an extra layer", func() (v1.Image, error) {
			return mutate.AppendLayers(img, appLayer(reg("/motd", 0o644, []byte("hello\n"))))
		}, "layers"},
	} {
		changed, err := c.img()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		diffs := compare(t, d, changed, testPlatform)
		if !slices.ContainsFunc(diffs, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("image with %s: compare says %q, want a difference about %s", c.name, diffs, c.want)
		}
	}
}

// The archive: the same input gives the same bytes; go-containerregistry reads it as an OCI
// layout and, through manifest.json, as a docker save archive, and both are the same image;
// containerd and OCI tools find its name; every file has the one time.
func TestArchive(t *testing.T) {
	archive := makeImage(t)
	img, desc := ociImage(t, archive)
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	ref, err := name.NewTag(testRef)
	if err != nil {
		t.Fatal(err)
	}
	if got := desc.Annotations["io.containerd.image.name"]; got != testRef {
		t.Errorf("index.json: io.containerd.image.name %q, want %q", got, testRef)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != ref.TagStr() {
		t.Errorf("index.json: org.opencontainers.image.ref.name %q, want %q", got, ref.TagStr())
	}
	if desc.Platform == nil || !desc.Platform.Equals(testPlatform) {
		t.Errorf("index.json: platform %v, want %s", desc.Platform, testPlatform)
	}

	// docker load's view: manifest.json.
	dimg, err := tarball.ImageFromPath(archive, &ref)
	if err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if err := validate.Image(dimg); err != nil {
		t.Errorf("validate.Image (manifest.json): %v", err)
	}
	digests := func(img v1.Image) []string {
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		out := []string{cfg.String()}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			h, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, h.String())
		}
		return out
	}
	if o, d := digests(img), digests(dimg); !slices.Equal(o, d) {
		t.Errorf("config and layers: index.json's %q, manifest.json's %q", o, d)
	}

	// One time for everything: the archive's entries, the layers' entries, the config.
	epoch := time.Unix(testEpoch, 0)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("archive entry %s: time %v, owner %d:%d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("archive entries not sorted: %q", names)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		var names []string
		for _, e := range entries(t, l) {
			names = append(names, e.hdr.Name)
			if !e.hdr.ModTime.Equal(epoch) || !e.hdr.AccessTime.IsZero() || !e.hdr.ChangeTime.IsZero() || e.hdr.Uname != "" || e.hdr.Gname != "" {
				t.Errorf("layer %d, %s: mtime %v atime %v ctime %v owner names %q %q", i, e.hdr.Name, e.hdr.ModTime, e.hdr.AccessTime, e.hdr.ChangeTime, e.hdr.Uname, e.hdr.Gname)
			}
		}
		if !slices.IsSorted(names) {
			t.Errorf("layer %d: entries not sorted: %q", i, names)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Equal(epoch) {
		t.Errorf("config created %v, want %v", cf.Created, epoch)
	}

	// Reproducible: the same binary, options and certificates again, in this process.
	binary := filepath.Join(made.bin, "image", "linux-"+runtime.GOARCH, "kube-vrrp")
	o := Options{
		Ref: testRef, Version: testVersion, Commit: testCommit, Created: epoch,
		Binaries:    []Binary{{Platform: testPlatform, Path: binary}},
		CACerts:     "/usr/share/ca-certificates/mozilla",
		CACopyright: "/usr/share/doc/ca-certificates/copyright",
	}
	b, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := b.WriteArchive(&again, o.Created); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(first) != sha256.Sum256(again.Bytes()) {
		t.Errorf("the same input, another archive: %d bytes, then %d", len(first), again.Len())
	}
	if h, err := b.Images[0].Image.Digest(); err != nil || h != desc.Digest {
		t.Errorf("the same input, manifest %v (%v), was %v", h, err, desc.Digest)
	}
}

// The CA bundle is Debian's as shipped: none of the certificates the machine's administrator
// added (/usr/local/share/ca-certificates, in the host's /etc/ssl/certs) is in the image.
func TestCABundle(t *testing.T) {
	img, _ := ociImage(t, makeImage(t))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, e := range entries(t, layers[0]) {
		if "/"+e.hdr.Name == caBundlePath {
			bundle = e.data
		}
	}
	inImage := map[[32]byte]bool{}
	for _, c := range certificates(t, bundle) {
		inImage[sha256.Sum256(c.Raw)] = true
	}
	if len(inImage) < 100 {
		t.Fatalf("%d certificates in %s", len(inImage), caBundlePath)
	}
	local, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	for _, p := range local {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range certificates(t, b) {
			if inImage[sha256.Sum256(c.Raw)] {
				t.Errorf("%s (%s), a certificate of this machine, is in the image", p, c.Subject)
			}
		}
	}
	t.Logf("%d certificates; %d local ones on this machine, none in the image", len(inImage), len(local))
}

// Build refuses what it cannot make a working image of.
func TestBuildRefuses(t *testing.T) {
	archive := makeImage(t)
	binary := filepath.Join(made.bin, "image", "linux-"+runtime.GOARCH, "kube-vrrp")
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	ok := Options{
		Ref: testRef, Version: testVersion, Commit: testCommit,
		Binaries:    []Binary{{Platform: testPlatform, Path: binary}},
		CACerts:     "/usr/share/ca-certificates/mozilla",
		CACopyright: "/usr/share/doc/ca-certificates/copyright",
	}
	testBinary, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no registry", func(o *Options) { o.Ref = "kube-vrrp:dev" }, "registry/repository:tag"},
		{"no tag", func(o *Options) { o.Ref = "registry.test/kube-vrrp" }, "registry/repository:tag"},
		{"a space in the version", func(o *Options) { o.Version = "v1 beta" }, "version"},
		{"no commit", func(o *Options) { o.Commit = "" }, "commit"},
		{"another architecture", func(o *Options) { o.Binaries[0].Platform.Architecture = other }, "built for"},
		{"another program", func(o *Options) { o.Binaries[0].Path = testBinary }, "a build of"},
		{"not a program", func(o *Options) { o.Binaries[0].Path = archive }, "not a Go binary"},
		{"a platform twice", func(o *Options) { o.Binaries = append(o.Binaries, o.Binaries[0]) }, "twice"},
		{"no certificates", func(o *Options) { o.CACerts = t.TempDir() }, "no CA certificates"},
	} {
		o := ok
		o.Binaries = slices.Clone(ok.Binaries)
		c.change(&o)
		if _, err := Build(o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Build: %v, want an error about %q", c.name, err, c.want)
		}
	}
}
