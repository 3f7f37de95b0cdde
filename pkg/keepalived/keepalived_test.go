package keepalived

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

const keepalivedBin = "/usr/sbin/keepalived"

// requireKeepalived skips when keepalived is not installed, except under CI, where the
// interop checks must run. keepalived -t checks that interfaces exist, so each check runs in
// a throwaway network namespace with the interfaces the corpus names: that needs root.
func requireKeepalived(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(keepalivedBin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing and CI=%q forbids skipping (make deps installs it)", keepalivedBin, os.Getenv("CI"))
		}
		t.Skipf("%s is not installed", keepalivedBin)
	}
	privtest.Require(t)
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check configurations with keepalived: %v", tool, err)
		}
	}
}

// corpusInterfaces are the interfaces the corpus configurations use.
const corpusInterfaces = "eth0 eth1 eth2 bond0"

var missingScript = regexp.MustCompile(`^Disabling track script (\S+) since not found/accessible$`)

// keepalivedCheck runs keepalived -t on file in a new network namespace holding veth
// interfaces named as in the corpus, and fails on any message. One message is allowed: a
// track script whose program is not installed on this machine (say nc), since keepalived
// checks that scripts exist.
func keepalivedCheck(t *testing.T, file string) {
	t.Helper()
	script := `set -e
for i in ` + corpusInterfaces + `; do ip link add "$i" type veth peer name "p$i"; done
ip link set lo up
exec ` + keepalivedBin + ` -t -f "$0"`
	cmd := exec.CommandContext(t.Context(), "unshare", "--net", "sh", "-c", script, file)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run keepalived -t: %v\n%s", err, out)
	}

	cfg, perr := LoadFile(file, nil)
	if perr != nil {
		t.Fatalf("LoadFile(%s): %v", file, perr)
	}
	commands := map[string]string{}
	for _, s := range cfg.Scripts {
		commands[s.Name] = s.Command
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		if m := missingScript.FindStringSubmatch(line); m != nil && !programInstalled(commands[m[1]]) {
			t.Logf("keepalived -t: %s (its program is not installed here)", line)
			continue
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 || (err != nil && len(bad) == 0 && !strings.Contains(string(out), "since not found")) {
		t.Errorf("keepalived -t -f %s: %v\n%s", file, err, strings.Join(bad, "\n"))
	}
}

func programInstalled(command string) bool {
	argv, ok := splitCommand(command)
	if !ok || len(argv) == 0 {
		return true // unknown: do not excuse the message
	}
	if strings.Contains(argv[0], "/") {
		_, err := os.Stat(argv[0])
		return err == nil
	}
	_, err := exec.LookPath(argv[0])
	return err == nil
}
