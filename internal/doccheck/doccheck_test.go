package doccheck

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const designDoc = "docs/design.md"

var (
	// heading is a numbered heading of the design document: "## 4. Protocol behaviour",
	// "### 4.2 Fast handover".
	heading = regexp.MustCompile(`(?m)^#{2,6}[ \t]+(\d+(?:\.\d+)*)\.?[ \t]`)
	// citation is "design.md" followed by one or more sections: "design.md §4.2",
	// "design.md §2.1, §7.5", "design.md §3.1/§3.3", "design.md §5.2 and §5.3", also when a
	// comment's line break falls inside it ("design.md\n// §4.2").
	citation = regexp.MustCompile(`design\.md((?:\s*(?:,|/|and|or)?\s*(?:(?://|#)\s*)?§\d+(?:\.\d+)*)+)`)
	section  = regexp.MustCompile(`§(\d+(?:\.\d+)*)`)
	// rfcChain is an RFC's section and the sections that follow it in a list: "RFC 5798 §6.4.2",
	// "RFC 5798 §5.1.1.2 and §5.1.2.2". Inside the design document every other § is its own.
	rfcChain = regexp.MustCompile(`RFC\s*\d+\s*§\d+(?:\.\d+)*(?:\s*(?:,|/|and|or)\s*§\d+(?:\.\d+)*)*`)
)

// forbidden are the citations comments must not make: the contract document that lived outside
// the repository (a reader of the repository cannot open it; docs/design.md replaced it), and
// issue numbers (they say nothing to a reader of the code; say what the test or code does).
// The patterns are assembled so that this file does not match them itself.
var forbidden = []struct {
	what string
	re   *regexp.Regexp
}{
	{"the retired contract document (cite docs/design.md §N)", regexp.MustCompile(`\b` + "DESIGN" + `(?:\.md\b|\s+§?\d)`)},
	{"an issue number (say what it is about)", regexp.MustCompile(`(?i)\bissues?\s*#\s*\d+|\bissues?\s+\d+\b`)},
	{"a numbered item of a work list (say what it is about)", regexp.MustCompile(`(?i)\b(?:hardening|issue)\s+items?\s+\d+`)},
}

func TestDesignCitationsResolve(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, designDoc))
	if err != nil {
		t.Fatalf("reading the design document: %v", err)
	}
	sections := headings(string(doc))
	if len(sections) == 0 {
		t.Fatalf("%s has no numbered headings (## N. Title, ### N.M Title)", designDoc)
	}
	seen := map[string]bool{}
	for _, n := range headingNumbers(string(doc)) {
		if seen[n] {
			t.Errorf("%s: two headings are numbered %s: a citation of it would be ambiguous", designDoc, n)
		}
		seen[n] = true
	}
	files := trackedFiles(t, root)
	if !slices.Contains(files, designDoc) {
		t.Fatalf("%s is not among the repository's files", designDoc)
	}
	cited := 0
	for _, f := range files {
		text, ok := readText(t, root, f)
		if !ok {
			continue
		}
		for _, c := range citations(text) {
			cited++
			if !sections[c.section] {
				t.Errorf("%s:%d: cites %s §%s, which has no heading there", f, c.line, designDoc, c.section)
			}
		}
		if f == designDoc {
			for _, c := range ownReferences(text) {
				if !sections[c.section] {
					t.Errorf("%s:%d: refers to §%s, which has no heading", f, c.line, c.section)
				}
			}
		}
	}
	t.Logf("%d citations of %s, %d sections", cited, designDoc, len(sections))
}

func TestNoRetiredCitations(t *testing.T) {
	root := repoRoot(t)
	for _, f := range trackedFiles(t, root) {
		text, ok := readText(t, root, f)
		if !ok {
			continue
		}
		for _, fb := range forbidden {
			for _, m := range fb.re.FindAllStringIndex(text, -1) {
				t.Errorf("%s:%d: %q cites %s", f, lineOf(text, m[0]), text[m[0]:m[1]], fb.what)
			}
		}
	}
}

// TestParsing pins what counts as a citation, a heading and an RFC's section, so that a
// pattern that silently matches nothing cannot pass the tests above.
func TestParsing(t *testing.T) {
	got := headings("# Title\n## 1. Contract\n### 1.2 Command line\n#### 1.2.3 Deep\n## Notes\n### 2.x\n")
	for _, want := range []string{"1", "1.2", "1.2.3"} {
		if !got[want] {
			t.Errorf("heading %s not found in %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("headings = %v, want 1, 1.2 and 1.2.3", got)
	}

	text := "// see docs/design.md §4.2.\n// (docs/design.md §2.1, §7.5 and §3.1/§3.3)\n// RFC 5798 §6.4.2 only\n" +
		"// as docs/design.md\n// §9.9 says\n"
	var secs []string
	for _, c := range citations(text) {
		secs = append(secs, c.section)
	}
	if want := []string{"4.2", "2.1", "7.5", "3.1", "3.3", "9.9"}; !slices.Equal(secs, want) {
		t.Errorf("citations = %v, want %v", secs, want)
	}

	own := ownReferences("as RFC 5798 §5.1.1.2 and §5.1.2.2 say, and as §4.7 and\n§10 do")
	secs = nil
	for _, c := range own {
		secs = append(secs, c.section)
	}
	if want := []string{"4.7", "10"}; !slices.Equal(secs, want) {
		t.Errorf("own references = %v, want %v", secs, want)
	}

	for _, s := range []string{"See DESIGN" + ".md in the shared folder", "(DESIGN" + " 3.3)", "DESIGN" + " §3.1",
		"probes (issue" + " 4)", "issue" + " #12", "(hardening" + " item 6)"} {
		if !slices.ContainsFunc(forbidden, func(f struct {
			what string
			re   *regexp.Regexp
		}) bool {
			return f.re.MatchString(s)
		}) {
			t.Errorf("%q is not refused", s)
		}
	}
	for _, s := range []string{"docs/design.md §7.10", "moby#45491", "an issuer", "the token the API server did not issue"} {
		for _, f := range forbidden {
			if f.re.MatchString(s) {
				t.Errorf("%q refused as %s", s, f.what)
			}
		}
	}
}

type reference struct {
	section string
	line    int
}

// headings returns the section numbers of text's numbered headings.
func headings(text string) map[string]bool {
	out := map[string]bool{}
	for _, n := range headingNumbers(text) {
		out[n] = true
	}
	return out
}

func headingNumbers(text string) []string {
	var out []string
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// citations returns every section of the design document that text cites.
func citations(text string) []reference {
	var out []reference
	for _, m := range citation.FindAllStringSubmatchIndex(text, -1) {
		list := text[m[2]:m[3]]
		for _, s := range section.FindAllStringSubmatchIndex(list, -1) {
			out = append(out, reference{section: list[s[2]:s[3]], line: lineOf(text, m[2]+s[0])})
		}
	}
	return out
}

// ownReferences returns the sections the design document cites of itself: every § that is not
// part of an RFC citation.
func ownReferences(text string) []reference {
	blanked := rfcChain.ReplaceAllStringFunc(text, func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\n' {
				return r
			}
			return ' '
		}, s)
	})
	var out []reference
	for _, m := range section.FindAllStringSubmatchIndex(blanked, -1) {
		out = append(out, reference{section: blanked[m[2]:m[3]], line: lineOf(blanked, m[0])})
	}
	return out
}

func lineOf(text string, off int) int { return strings.Count(text[:off], "\n") + 1 }

// repoRoot is the directory holding go.mod, above the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// trackedFiles lists the repository's files, relative to root, as git tracks them; without git
// (a source tarball), every file under root except bin/ and hidden directories.
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		var files []string
		for f := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
			if f != "" {
				files = append(files, f)
			}
		}
		return files
	} else if !errors.Is(err, exec.ErrNotFound) && !isNotRepo(err) {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && rel != "." && (rel == "bin" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func isNotRepo(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && bytes.Contains(ee.Stderr, []byte("not a git repository"))
}

// readText returns a file's content, or false for a binary file or one that is gone (deleted in
// the working tree but still in the index).
func readText(t *testing.T, root, name string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return "", false
	}
	return string(b), true
}
