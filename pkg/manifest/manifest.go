package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// Limits that keep a mistaken or hostile file from exhausting the agent.
const (
	// MaxFileSize is the largest manifest file read.
	MaxFileSize = 4 << 20
	// MaxDocuments is the most YAML documents one file may hold.
	MaxDocuments = 1000
	// maxErrors is how many problems Load reports before it gives up.
	maxErrors = 100
)

// The kinds Load reads.
var (
	virtualIPAPIVersion = v1alpha1.GroupVersion.String()
	secretAPIVersion    = corev1.SchemeGroupVersion.String()
)

// Set is the content of one or more manifest files.
type Set struct {
	// VirtualIPs in the order the files list them; names are unique.
	VirtualIPs []v1alpha1.VirtualIP
	// Secrets by name. The namespace is ignored: standalone mode has only one. stringData is
	// already merged into data, as the API server does.
	Secrets map[string]corev1.Secret

	// sources maps a VirtualIP's name to the file it came from.
	sources map[string]string
}

// Source returns the file the named VirtualIP was read from, or "" if there is none.
func (s *Set) Source(name string) string { return s.sources[name] }

// Password returns the PASS password of vip from the Secret its
// spec.authentication.secretRef names, or nil if vip has no authentication. Errors name the
// Secret and key, never the value.
func (s *Set) Password(vip *v1alpha1.VirtualIP) ([]byte, error) {
	a := vip.Spec.Authentication
	if a == nil {
		return nil, nil
	}
	ref := a.SecretRef
	sec, ok := s.Secrets[ref.Name]
	if !ok {
		return nil, fmt.Errorf("VirtualIP %q: spec.authentication.secretRef.name: Secret %q not found: add a Secret of that name to the manifests", vip.Name, ref.Name)
	}
	v, ok := sec.Data[ref.Key]
	if !ok {
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, strconv.Quote(k))
		}
		slices.Sort(keys)
		have := "it has no keys"
		if len(keys) > 0 {
			have = "it has " + strings.Join(keys, ", ")
		}
		return nil, fmt.Errorf("VirtualIP %q: spec.authentication.secretRef.key: Secret %q has no key %q (%s)", vip.Name, ref.Name, ref.Key, have)
	}
	return bytes.Clone(v), nil
}

// Load reads the manifest files at paths ("-" is standard input). Every document must be a
// VirtualIP (kubevrrp.io/v1alpha1) or a Secret (v1); fields are decoded strictly, so a typo is an
// error rather than a silently ignored setting. VirtualIP and Secret names must be unique across
// all files. Load does not validate the VirtualIPs' specs: that is desired.Validate. It reports
// every problem it finds, each on its own line naming the file and document.
func Load(paths ...string) (*Set, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifest file given")
	}
	l := newLoader()
	for _, p := range paths {
		data, err := readFile(p)
		if err != nil {
			l.fail(err)
			continue
		}
		l.parse(p, data)
	}
	return l.result()
}

// Parse reads one manifest file's content; name is used in errors and as the Source of its
// VirtualIPs. See Load.
func Parse(name string, data []byte) (*Set, error) {
	l := newLoader()
	if len(data) > MaxFileSize {
		l.fail(fmt.Errorf("%s: larger than %d bytes", name, MaxFileSize))
	} else {
		l.parse(name, data)
	}
	return l.result()
}

func readFile(path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("%s: is a directory; name the manifest files in it", path)
		}
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

type loader struct {
	set       *Set
	errs      []error
	vipAt     map[string]string
	secretAt  map[string]string
	truncated bool
}

func newLoader() *loader {
	return &loader{
		set:      &Set{Secrets: map[string]corev1.Secret{}, sources: map[string]string{}},
		vipAt:    map[string]string{},
		secretAt: map[string]string{},
	}
}

func (l *loader) fail(err error) {
	if len(l.errs) >= maxErrors {
		l.truncated = true
		return
	}
	l.errs = append(l.errs, err)
}

func (l *loader) result() (*Set, error) {
	if l.truncated {
		l.errs = append(l.errs, fmt.Errorf("more than %d problems; fix these first", maxErrors))
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.set, nil
}

// document is one YAML document of a file.
type document struct {
	index int // 1-based, counting non-empty documents only
	line  int // 1-based line of the file where its content starts
	// offset is the file line before data's first line: YAML's line n is the file's n+offset.
	offset int
	data   []byte
}

func (d document) where(file string) string {
	return fmt.Sprintf("%s: document %d (line %d)", file, d.index, d.line)
}

func (l *loader) parse(file string, data []byte) {
	docs, err := split(data)
	if err != nil {
		l.fail(fmt.Errorf("%s: %w", file, err))
		return
	}
	for _, d := range docs {
		l.document(file, d)
	}
}

// split cuts data into its YAML documents at "---" and "..." marker lines, and drops documents
// that hold nothing but blank lines and comments.
func split(data []byte) ([]document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var (
		docs  []document
		cur   bytes.Buffer
		first = 1 // file line of cur's first line
		start = 0 // file line of the document's first content line
		count = 0
	)
	flush := func() error {
		count++
		if count > MaxDocuments {
			return fmt.Errorf("more than %d YAML documents", MaxDocuments)
		}
		if start > 0 {
			docs = append(docs, document{index: len(docs) + 1, line: start, offset: first - 1, data: bytes.Clone(cur.Bytes())})
		}
		cur.Reset()
		start = 0
		return nil
	}
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		text := strings.TrimRight(string(line), "\r\n")
		if marker, rest, ok := documentMarker(text); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			first = n + 2
			if marker == "---" && rest != "" && !strings.HasPrefix(rest, "#") {
				// "--- {kind: ...}": content on the marker line belongs to the new document.
				cur.WriteString(rest + "\n")
				first, start = n+1, n+1
			}
			continue
		}
		if t := strings.TrimSpace(text); start == 0 && t != "" && !strings.HasPrefix(t, "#") {
			start = n + 1
		}
		cur.Write(line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// documentMarker reports whether line starts a new document ("---") or ends one ("..."), and
// what follows the marker.
func documentMarker(line string) (marker, rest string, ok bool) {
	for _, m := range []string{"---", "..."} {
		if !strings.HasPrefix(line, m) {
			continue
		}
		rest := line[len(m):]
		if rest == "" {
			return m, "", true
		}
		if rest[0] == ' ' || rest[0] == '\t' {
			return m, strings.TrimSpace(rest), true
		}
	}
	return "", "", false
}

// yamlLine matches the line numbers in YAML errors, which count from the document's start.
var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

func (l *loader) document(file string, d document) {
	where := d.where(file)
	j, err := yaml.YAMLToJSONStrict(d.data)
	if err != nil {
		// Point at lines of the file, not of the document.
		msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(s string) string {
			n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(s)[1])
			return "line " + strconv.Itoa(n+d.offset)
		})
		l.fail(fmt.Errorf("%s: invalid YAML: %s", where, strings.ReplaceAll(msg, "\n", " ")))
		return
	}
	j = bytes.TrimSpace(j)
	if string(j) == "null" {
		return // e.g. a document of only "~"
	}
	if len(j) == 0 || j[0] != '{' {
		l.fail(fmt.Errorf("%s: want an object with apiVersion and kind, not a %s", where, jsonKind(j)))
		return
	}
	var tm struct {
		APIVersion any `json:"apiVersion"`
		Kind       any `json:"kind"`
	}
	_ = json.Unmarshal(j, &tm) // j is an object
	apiVersion, _ := tm.APIVersion.(string)
	kind, _ := tm.Kind.(string)
	if kind == "" || apiVersion == "" {
		l.fail(fmt.Errorf("%s: every document needs apiVersion and kind as strings (apiVersion: %s, kind: VirtualIP)", where, virtualIPAPIVersion))
		return
	}
	switch {
	case kind == "VirtualIP" && apiVersion == virtualIPAPIVersion:
		var vip v1alpha1.VirtualIP
		if err := decodeStrict(j, &vip); err != nil {
			l.fail(fmt.Errorf("%s: VirtualIP: %w", where, err))
			return
		}
		if vip.Name == "" {
			l.fail(fmt.Errorf("%s: VirtualIP: metadata.name: Required value: give the VirtualIP a name", where))
			return
		}
		if prev, dup := l.vipAt[vip.Name]; dup {
			l.fail(fmt.Errorf("%s: VirtualIP %q is already defined at %s: names must be unique", where, vip.Name, prev))
			return
		}
		l.vipAt[vip.Name] = where
		l.set.sources[vip.Name] = file
		l.set.VirtualIPs = append(l.set.VirtualIPs, vip)
	case kind == "Secret" && apiVersion == secretAPIVersion:
		var sec corev1.Secret
		if err := decodeStrict(j, &sec); err != nil {
			msg := err.Error()
			if strings.Contains(msg, "stringData") {
				msg += ` (stringData values are strings: quote them, e.g. password: "12345678")`
			}
			l.fail(fmt.Errorf("%s: Secret: %s", where, msg))
			return
		}
		if sec.Name == "" {
			l.fail(fmt.Errorf("%s: Secret: metadata.name: Required value: give the Secret a name", where))
			return
		}
		if prev, dup := l.secretAt[sec.Name]; dup {
			l.fail(fmt.Errorf("%s: Secret %q is already defined at %s: names must be unique", where, sec.Name, prev))
			return
		}
		if len(sec.StringData) > 0 {
			if sec.Data == nil {
				sec.Data = make(map[string][]byte, len(sec.StringData))
			}
			for k, v := range sec.StringData {
				sec.Data[k] = []byte(v)
			}
			sec.StringData = nil
		}
		l.secretAt[sec.Name] = where
		l.set.Secrets[sec.Name] = sec
	case kind == "VirtualIP" || kind == "Secret":
		want := virtualIPAPIVersion
		if kind == "Secret" {
			want = secretAPIVersion
		}
		l.fail(fmt.Errorf("%s: %s has apiVersion %q: use apiVersion: %s", where, kind, apiVersion, want))
	default:
		l.fail(fmt.Errorf("%s: kind %q (apiVersion %q) is not supported: only VirtualIP (%s) and Secret (%s) are read",
			where, kind, apiVersion, virtualIPAPIVersion, secretAPIVersion))
	}
}

// decodeStrict decodes j into v, rejecting unknown and duplicate fields with their paths.
func decodeStrict(j []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(strict) > 0 {
		msgs := make([]string, 0, len(strict))
		for _, e := range strict {
			msgs = append(msgs, strings.TrimPrefix(e.Error(), "json: "))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

func jsonKind(j []byte) string {
	switch {
	case len(j) == 0:
		return "empty document"
	case j[0] == '[':
		return "list"
	case j[0] == '"':
		return "string"
	default:
		return "scalar"
	}
}
