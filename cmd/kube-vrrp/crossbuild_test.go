package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// crossTargets are the systems besides Linux that the command builds for: operators run
// validate, convert and version on their laptops. run, agent and state-dir fail there (the
// host side, pkg/hostnet, and the process, exec and interface probes are Linux only).
var crossTargets = []struct{ goos, goarch, exe string }{
	{"darwin", "arm64", ""},
	{"windows", "amd64", ".exe"},
}

// linuxOnly are the libraries that only the Linux files of pkg/hostnet and pkg/probe may use: a
// build for another system must not link them, or the stubs leak (some compile elsewhere and
// would only fail at run time).
var linuxOnly = []string{
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/google/nftables",
	"github.com/mdlayher/packet",
}

// goTool runs the go command (go test puts its own first in PATH) for goos/goarch, without cgo,
// in this package's directory, and returns its standard output.
func goTool(t *testing.T, goos, goarch string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s GOARCH=%s go %s: %v\n%s", goos, goarch, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestCrossBuild builds the command for macOS and Windows, and checks that no Linux-only library
// is linked in.
func TestCrossBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the command (about a minute each with a cold build cache)")
	}
	for _, tt := range crossTargets {
		t.Run(tt.goos+"/"+tt.goarch, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "kube-vrrp"+tt.exe)
			goTool(t, tt.goos, tt.goarch, "build", "-o", bin, ".")
			if fi, err := os.Stat(bin); err != nil || fi.Size() == 0 {
				t.Fatalf("no binary built: %v", err)
			}
			deps := goTool(t, tt.goos, tt.goarch, "list", "-deps", "-f", "{{.ImportPath}}", ".")
			for dep := range strings.FieldsSeq(deps) {
				for _, l := range linuxOnly {
					if dep == l || strings.HasPrefix(dep, l+"/") {
						t.Errorf("the %s build imports %s, which only Linux files may use", tt.goos, dep)
					}
				}
			}
		})
	}
}

// TestStubAPI: pkg/hostnet and pkg/probe export the same API on every system, so that their
// callers need no build tags; outside Linux the stubs fail with errors.ErrUnsupported.
func TestStubAPI(t *testing.T) {
	// api is what go doc -all shows of pkg's declarations, without the doc comments.
	api := func(pkg, goos, goarch string) []string {
		var decls []string
		for line := range strings.Lines(goTool(t, goos, goarch, "doc", "-all", pkg)) {
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "CONSTANTS" || line == "VARIABLES" || line == "FUNCTIONS" || line == "TYPES":
				decls = append(decls, line)
			case decls == nil, line == "", strings.HasPrefix(line, "    "), strings.HasPrefix(strings.TrimSpace(line), "//"):
				// The package's doc, blank lines, and doc comments.
			default:
				decls = append(decls, line)
			}
		}
		if len(decls) == 0 {
			t.Fatalf("go doc -all %s (GOOS=%s) lists no declarations", pkg, goos)
		}
		return decls
	}
	for _, pkg := range []string{"../../pkg/hostnet", "../../pkg/probe"} {
		linux := api(pkg, "linux", "amd64")
		for _, tt := range crossTargets {
			if diff := cmp.Diff(linux, api(pkg, tt.goos, tt.goarch)); diff != "" {
				t.Errorf("%s exports another API on %s than on Linux (-linux +%s):\n%s", pkg, tt.goos, tt.goos, diff)
			}
		}
	}
}
