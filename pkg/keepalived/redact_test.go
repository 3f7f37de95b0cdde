package keepalived

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"sigs.k8s.io/yaml"
)

// convertAll runs what kube-vrrp convert runs on the files of one or two nodes: Parse, then
// Convert (one node) or Merge (two), then YAML. It returns everything printed as text about
// the input (warnings and the error) apart from the manifests.
func convertAll(t *testing.T, hosts map[string]string) (messages, manifests string) {
	t.Helper()
	files := map[string]string{}
	for n, c := range hosts {
		files[n+".conf"] = c
	}
	fsys := mapFS(files)
	per := map[string]*Config{}
	var msgs []string
	for n := range hosts {
		cfg, err := Parse(fsys, n+".conf", nil)
		if err != nil {
			return err.Error(), ""
		}
		for _, w := range cfg.Warnings {
			msgs = append(msgs, w.String())
		}
		per[n] = cfg
	}
	var res *Result
	var err error
	if len(per) == 1 {
		for _, cfg := range per {
			res, err = Convert(cfg)
		}
	} else {
		res, err = Merge(per)
	}
	if err != nil {
		return strings.Join(append(msgs, err.Error()), "\n"), ""
	}
	out, err := res.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	return strings.Join(append(msgs, res.Warnings...), "\n"), string(out)
}

// The secrets of a keepalived.conf (auth_pass, credentials in the commands of scripts) never
// appear in what convert prints about the input: warnings and errors, with their file:line.
// The manifests keep what the VirtualIP needs to work: the password in the Secret, and the
// probe's URL or command as written.
func TestConvertRedactsSecrets(t *testing.T) {
	const (
		pass    = "Sup3rPw"      // auth_pass
		urlCred = "Hunt3r2pw"    // the password of a URL's userinfo
		user    = "monitoruser"  // the user of a URL's userinfo
		token   = "T0kenXYZ9abc" // a token used as the user of a URL
		optCred = "S3cretOpt"    // curl -u user:password
	)
	script := func(cmd string) string {
		return "vrrp_script chk {\n  script \"" + cmd + "\"\n}\n"
	}
	tracked := func(body string) string {
		return instance("  track_script {\n    chk\n  }\n" + body)
	}
	auth := "  authentication {\n    auth_type PASS\n    auth_pass " + pass + "\n  }\n"
	tests := []struct {
		name    string
		hosts   map[string]string
		secrets []string
		// inManifest are the secrets the manifests must still hold for the VirtualIP to work.
		inManifest []string
		// wantMsg is a part of the messages that shows the redaction (the message is there).
		wantMsg string
		fails   bool
	}{{
		name:       "auth_pass with extra words",
		hosts:      map[string]string{"lb1": instance("  authentication {\n    auth_type PASS\n    auth_pass " + pass + " tail-" + pass + "\n  }\n")},
		secrets:    []string{pass},
		inManifest: []string{pass},
		wantMsg:    "auth_pass: the words after the password are ignored",
	}, {
		name:       "auth_pass longer than 8 bytes",
		hosts:      map[string]string{"lb1": instance("  authentication {\n    auth_type PASS\n    auth_pass " + pass + "Long" + "\n  }\n")},
		secrets:    []string{pass + "Long", pass},
		inManifest: []string{pass + "L"},
		wantMsg:    "auth_pass is longer than 8 bytes",
	}, {
		name:       "URL userinfo in a shell script",
		hosts:      map[string]string{"lb1": script("curl -s http://"+user+":"+urlCred+"@127.0.0.1:8404/stats | grep -q UP") + tracked(auth)},
		secrets:    []string{urlCred, user + ":" + urlCred, pass},
		inManifest: []string{urlCred, pass},
		wantMsg:    "http://<redacted>@127.0.0.1:8404/stats",
	}, {
		name:       "URL userinfo in an http probe",
		hosts:      map[string]string{"lb1": script("curl -sf http://"+user+":"+urlCred+"@127.0.0.1:8404/health") + tracked("")},
		secrets:    []string{urlCred},
		inManifest: []string{urlCred},
		wantMsg:    "http://<redacted>@127.0.0.1:8404/health",
	}, {
		name:       "URL userinfo without a scheme",
		hosts:      map[string]string{"lb1": script("curl -sf "+user+":"+urlCred+"@127.0.0.1:8404/health") + tracked("")},
		secrets:    []string{urlCred},
		inManifest: []string{urlCred},
		wantMsg:    "<redacted>@127.0.0.1:8404/health",
	}, {
		name:       "token as the URL's user, in a notify script",
		hosts:      map[string]string{"lb1": instance("  notify_master \"/usr/local/bin/alert https://" + token + "@alerts.example/hook\"\n")},
		secrets:    []string{token},
		inManifest: []string{token},
		wantMsg:    "(/usr/local/bin/alert https://<redacted>@alerts.example/hook): the command holds credentials",
	}, {
		name: "merge error comparing notify commands with credentials",
		hosts: map[string]string{
			"lb1": instance("  notify \"/usr/local/bin/alert https://" + token + "@alerts.example/a\"\n"),
			"lb2": instance("  notify \"/usr/local/bin/alert https://" + token + "@alerts.example/b\"\n"),
		},
		secrets: []string{token},
		wantMsg: "notify differs between nodes",
		fails:   true,
	}, {
		// The merge error shell-quotes each word: a quote in the password changes its form.
		name: "merge error comparing notify commands with a quote in a password",
		hosts: map[string]string{
			"lb1": instance("  notify \"/usr/local/bin/alert --password it\\\\'s" + optCred + " /a\"\n"),
			"lb2": instance("  notify \"/usr/local/bin/alert --password it\\\\'s" + optCred + " /b\"\n"),
		},
		secrets: []string{"it's" + optCred, optCred},
		wantMsg: "notify differs between nodes",
		fails:   true,
	}, {
		name:    "error on a notify command with credentials",
		hosts:   map[string]string{"lb1": instance("  notify_backup \"alert https://" + token + "@alerts.example/hook\"\n")},
		secrets: []string{token},
		wantMsg: "alert is not an absolute path",
		fails:   true,
	}, {
		name:       "curl -u user:password",
		hosts:      map[string]string{"lb1": script("curl -sf -u admin:"+optCred+" http://127.0.0.1/health") + tracked("")},
		secrets:    []string{optCred},
		inManifest: []string{optCred},
		wantMsg:    "-u <redacted>",
	}, {
		name:       "wget --password=",
		hosts:      map[string]string{"lb1": script("wget -q --user=admin --password="+optCred+" -O /dev/null http://127.0.0.1/health") + tracked("")},
		secrets:    []string{optCred},
		inManifest: []string{optCred},
		wantMsg:    "--password=<redacted>",
	}, {
		name:    "error on a script with credentials",
		hosts:   map[string]string{"lb1": script("/usr/bin/curl http://"+user+":"+urlCred+"@127.0.0.1/ \\x1b") + tracked("")},
		secrets: []string{urlCred},
		wantMsg: "has control characters",
		fails:   true,
	}, {
		name: "merge error comparing probes with credentials",
		hosts: map[string]string{
			"lb1": script("curl -sf http://"+user+":"+urlCred+"@127.0.0.1/a") + tracked(""),
			"lb2": script("curl -sf http://"+user+":"+urlCred+"@127.0.0.1/b") + tracked(""),
		},
		secrets: []string{urlCred},
		wantMsg: "differs between nodes",
		fails:   true,
	}, {
		name: "merge of a pair with credentials",
		hosts: map[string]string{
			"lb1": script("curl -s http://"+user+":"+urlCred+"@127.0.0.1/ | grep -q UP") + tracked(auth),
			"lb2": script("curl -s http://"+user+":"+urlCred+"@127.0.0.1/ | grep -q UP") + tracked(auth),
		},
		secrets:    []string{urlCred, pass},
		inManifest: []string{urlCred, pass},
		wantMsg:    "http://<redacted>@127.0.0.1/",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, out := convertAll(t, tt.hosts)
			if tt.fails != (out == "") {
				t.Fatalf("conversion failed = %v, want %v; messages:\n%s", out == "", tt.fails, msgs)
			}
			for _, s := range tt.secrets {
				if strings.Contains(msgs, s) {
					t.Errorf("secret %q is printed:\n%s", s, msgs)
				}
			}
			if !strings.Contains(msgs, tt.wantMsg) {
				t.Errorf("messages lack %q:\n%s", tt.wantMsg, msgs)
			}
			for _, s := range tt.inManifest {
				if !strings.Contains(out, s) {
					t.Errorf("the manifests lost %q, which the VirtualIP needs:\n%s", s, out)
				}
			}
			requireOnlyWhereNeeded(t, out, tt.secrets)
		})
	}
}

// requireOnlyWhereNeeded fails if a secret is in a manifest anywhere but a Secret's data, a
// probe's url or command, or a notify command.
func requireOnlyWhereNeeded(t *testing.T, out string, secrets []string) {
	t.Helper()
	for _, doc := range strings.Split(out, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		if m["kind"] == "Secret" {
			continue
		}
		if spec, ok := m["spec"].(map[string]any); ok {
			delete(spec, "probes")
			delete(spec, "notify")
		}
		rest, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(rest), s) {
				t.Errorf("secret %q is in the manifest outside a Secret, the probes and the notify commands:\n%s", s, doc)
			}
		}
	}
}

// Every credential the manifests keep is pointed out, without its value: the VirtualIP is
// readable by whoever may read VirtualIPs.
func TestConvertWarnsOfCredentialsInProbes(t *testing.T) {
	res := convertString(t, "vrrp_script chk {\n  script \"curl -sf http://u:Hunt3r2pw@127.0.0.1/health\"\n}\n"+
		instance("  track_script {\n    chk\n  }\n"))
	all := strings.Join(res.Warnings, "\n")
	if !strings.Contains(all, "credentials") || strings.Contains(all, "Hunt3r2pw") {
		t.Errorf("want a warning about the credentials in the probe, without them:\n%s", all)
	}
	if got := res.VirtualIPs[0].Spec.Probes[0].HTTP; got == nil || got.URL != "http://u:Hunt3r2pw@127.0.0.1/health" {
		t.Errorf("probe = %+v, want the URL as written", res.VirtualIPs[0].Spec.Probes[0])
	}
}

func TestRedactText(t *testing.T) {
	r := newRedactor([]string{"p4ssw0rd", "ab"})
	tests := []struct{ in, want string }{
		{"curl http://u:x@h/", "curl http://<redacted>@h/"},
		{"curl http://u:x@y@h/p@q", "curl http://<redacted>@h/p@q"},
		{`"curl HTTPS://tok@h"`, `"curl HTTPS://<redacted>@h"`},
		{"see http://h/a@b", "see http://h/a@b"},
		{"mail a@b.example", "mail a@b.example"},
		{"password p4ssw0rd and \"p4ssw0rd\"", "password <redacted> and \"<redacted>\""},
		// Too short to replace everywhere ("ab" would mangle every word holding it).
		{"about", "about"},
		{"curl -u admin:pw http://h/", "curl -u <redacted> http://h/"},
		{"curl --user=admin:pw http://h/", "curl --user=<redacted> http://h/"},
		{"wget --http-password secret1 http://h/", "wget --http-password <redacted> http://h/"},
		{`curl -H "Authorization: Bearer abc" http://h/`, `curl -H "Authorization: <redacted>" http://h/`},
		{"pgrep -u root haproxy", "pgrep -u root haproxy"},
		{`wget --header="AUTHORIZATION: Basic YWI6Y2Q=" http://h/`, `wget --header="AUTHORIZATION: <redacted>" http://h/`},
	}
	for _, tt := range tests {
		if got := r.text(tt.in); got != tt.want {
			t.Errorf("text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// An include names regular files only: a directory, a named pipe (opening it would block
// until a writer comes), a device or a socket is refused with an error that says what it is.
func TestIncludeOnlyRegularFiles(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"directory", fstest.MapFS{"k.conf": {Data: []byte("include d\n")}, "d/x": {}},
			"k.conf:1:9: include d: d is a directory, not a regular file; include only regular files"},
		{"named pipe", fstest.MapFS{"k.conf": {Data: []byte("include p\n")}, "p": {Mode: fs.ModeNamedPipe}},
			"k.conf:1:9: include p: p is a named pipe (FIFO), not a regular file; include only regular files"},
		{"device", fstest.MapFS{"k.conf": {Data: []byte("include *.dev\n")}, "a.dev": {Mode: fs.ModeDevice | fs.ModeCharDevice}},
			"k.conf:1:9: include *.dev: a.dev is a device, not a regular file; include only regular files"},
		{"socket", fstest.MapFS{"k.conf": {Data: []byte("includea s\n")}, "s": {Mode: fs.ModeSocket}},
			"k.conf:1:10: includea s: s is a socket, not a regular file; include only regular files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.fsys, "k.conf", nil)
			if err == nil {
				t.Fatal("no error")
			}
			requirePositions(t, err)
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// The same on the real file system, through symbolic links too: LoadFile must not block on a
// FIFO nor read a device.
func TestLoadFileIncludeOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(t, filepath.Join(dir, "fifo"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"to-fifo": "fifo", "to-null": "/dev/null", "to-dir": "sub", "to-file": "ok.conf"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	write("ok.conf", "! nothing\n")
	tests := []struct{ include, want string }{
		{"fifo", "fifo is a named pipe (FIFO), not a regular file"},
		{"to-fifo", "to-fifo is a named pipe (FIFO), not a regular file"},
		{"to-null", "to-null is a device, not a regular file"},
		{"to-dir", "to-dir is a directory, not a regular file"},
		{"to-file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.include, func(t *testing.T) {
			main := "main-" + tt.include + ".conf"
			write(main, "include "+tt.include+"\n")
			done := make(chan error, 1)
			go func() { _, err := LoadFile(filepath.Join(dir, main), nil); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("LoadFile blocks (it opened the FIFO)")
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("a symbolic link to a regular file: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
