package keepalived

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
)

// FuzzParse feeds arbitrary bytes to the parser (as the main file, next to files it may
// include) and on through Convert, Merge and YAML: nothing may panic, and every error must
// carry a file:line:col. Seeds: testdata/fuzz/FuzzParse and every corpus file.
func FuzzParse(f *testing.F) {
	err := fs.WalkDir(os.DirFS(corpusDir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".conf") {
			return err
		}
		data, err := os.ReadFile(corpusDir + "/" + p)
		if err == nil {
			f.Add(data)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"k.conf":          {Data: data},
			"inc/script.conf": {Data: []byte("vrrp_script chk {\n  script \"pgrep -x haproxy\"\n  weight -2\n}\n")},
			"inc/loop.conf":   {Data: []byte("include ../k.conf\n")},
		}
		opts := &Options{MaxFileSize: 256 << 10, MaxTotalSize: 1 << 20}
		// The secrets of the input (auth_pass, credentials in commands) appear in no message.
		var secrets []string
		if ast, err := ParseAST(fsys, "k.conf", opts); err == nil {
			secrets = astSecrets(ast.Nodes)
		}
		cfg, err := Parse(fsys, "k.conf", opts)
		if err != nil {
			requirePositions(t, err)
			requireNoSecrets(t, secrets, strings.Split(err.Error(), "\n"))
			return
		}
		for _, w := range cfg.Warnings {
			requireNoSecrets(t, secrets, []string{w.String()})
		}
		res, err := Convert(cfg)
		if err != nil {
			requirePositions(t, err)
			requireNoSecrets(t, secrets, strings.Split(err.Error(), "\n"))
			return
		}
		if _, err := res.YAML(); err != nil {
			t.Fatalf("YAML: %v", err)
		}
		requireNoSecrets(t, secrets, res.Warnings)
		for _, w := range res.Warnings {
			if !strings.HasPrefix(w, "k.conf:") && !strings.HasPrefix(w, "inc/") {
				t.Fatalf("warning without a position: %q", w)
			}
		}
		// What converts must pass the rules of kube-vrrp validate.
		for i := range res.VirtualIPs {
			if errs := desired.Validate(&res.VirtualIPs[i]); len(errs) > 0 {
				t.Fatalf("converted VirtualIP does not validate: %v", errs.ToAggregate())
			}
		}
		merged, err := Merge(map[string]*Config{"a": cfg, "b": cfg})
		if err != nil {
			requirePositions(t, err)
			requireNoSecrets(t, secrets, strings.Split(err.Error(), "\n"))
			return
		}
		requireNoSecrets(t, secrets, merged.Warnings)
		for i := range merged.VirtualIPs {
			if errs := desired.Validate(&merged.VirtualIPs[i]); len(errs) > 0 {
				t.Fatalf("merged VirtualIP does not validate: %v", errs.ToAggregate())
			}
		}
	})
}

// requireNoSecrets fails if a message (after its "file:line[:col]: " position) shows one of
// the secrets long enough to be replaced everywhere (see minSecretLen). The <redacted> marks
// are blanked first: a secret such as "acted" is inside every one of them.
func requireNoSecrets(t *testing.T, secrets []string, messages []string) {
	t.Helper()
	for _, m := range messages {
		if _, msg, ok := strings.Cut(m, ": "); ok {
			m = msg
		}
		m = strings.ReplaceAll(m, redacted, "\x00")
		for _, s := range secrets {
			if len(s) >= minSecretLen && strings.Contains(m, s) {
				t.Fatalf("message shows the secret %q: %q", s, m)
			}
		}
	}
}
