package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// camelCase is the form of every reason: one CamelCase word.
var camelCase = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

func TestReasonSetsWellFormed(t *testing.T) {
	for what, set := range map[string][]string{"node": NodeReasons(), "condition": ConditionReasons(), "event": EventReasons()} {
		seen := map[string]bool{}
		for _, r := range set {
			if !camelCase.MatchString(r) || !conditionReason.MatchString(r) {
				t.Errorf("%s reason %q is not one CamelCase word", what, r)
			}
			if seen[r] {
				t.Errorf("%s reason %q listed twice", what, r)
			}
			seen[r] = true
		}
	}
}

// goFile is a parsed non-test Go file.
type goFile struct {
	name string
	f    *ast.File
}

func parseDir(t *testing.T, dir string) []goFile {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []goFile
	fset := token.NewFileSet()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goFile{n, f})
	}
	if len(out) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return out
}

// reasonConsts returns the string constants named Reason* declared in files, by name.
func reasonConsts(files []goFile) map[string]string {
	out := map[string]string{}
	for _, gf := range files {
		for _, d := range gf.f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Reason") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out[n.Name] = v
					}
				}
			}
		}
	}
	return out
}

// uses counts the references to each identifier in files (a.Name and pkg.Name alike), except
// its declaration and, if skip is not empty, the file named skip.
func uses(files []goFile, skip string) map[string]int {
	out := map[string]int{}
	for _, gf := range files {
		if skip != "" && filepath.Base(gf.name) == skip {
			continue
		}
		ast.Inspect(gf.f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				// The names declared are not uses; the values are.
				for _, v := range n.Values {
					ast.Inspect(v, func(m ast.Node) bool {
						if id, ok := m.(*ast.Ident); ok {
							out[id.Name]++
						}
						return true
					})
				}
				return false
			case *ast.SelectorExpr:
				out[n.Sel.Name]++
				ast.Inspect(n.X, func(m ast.Node) bool {
					if id, ok := m.(*ast.Ident); ok {
						out[id.Name]++
					}
					return true
				})
				return false
			case *ast.Ident:
				out[n.Name]++
			}
			return true
		})
	}
	return out
}

// Every reason the engine and the agent produce (a Reason* constant their code uses) is in the
// documented set of a member's status.reason.
func TestEngineReasonsDocumented(t *testing.T) {
	files := append(parseDir(t, filepath.Join("..", "pkg", "vrrp")), parseDir(t, filepath.Join("..", "pkg", "agent"))...)
	used := uses(files, "")
	n := 0
	for name, v := range reasonConsts(files) {
		if used[name] == 0 {
			continue // declared, never produced
		}
		n++
		if !slices.Contains(engineReasons, v) {
			t.Errorf("the engine or the agent produces reason %s (%q), which engineReasons (reasons.go) does not list", name, v)
		}
		if !camelCase.MatchString(v) {
			t.Errorf("reason %s = %q is not one CamelCase word", name, v)
		}
	}
	if n < 10 {
		t.Errorf("found %d reasons in pkg/vrrp and pkg/agent: the scan is broken", n)
	}
}

// Every reason this package declares is in one of the documented sets and is produced: used
// outside reasons.go.
func TestControllerReasonsDocumentedAndProduced(t *testing.T) {
	files := parseDir(t, ".")
	used := uses(files, "reasons.go")
	all := slices.Concat(NodeReasons(), ConditionReasons(), EventReasons())
	consts := reasonConsts(files)
	for name, v := range consts {
		if !slices.Contains(all, v) {
			t.Errorf("%s = %q is in no documented set (reasons.go)", name, v)
		}
		if used[name] == 0 {
			t.Errorf("%s = %q is never produced: remove it", name, v)
		}
	}
	declared := map[string]bool{}
	for _, v := range consts {
		declared[v] = true
	}
	for _, r := range slices.Concat(refusalReasons, warningReasons, conditionReasons) {
		if !declared[r] {
			t.Errorf("documented reason %q is not a Reason* constant of this package", r)
		}
	}
}

// Where this package sets a reason, it is a documented constant: the Reason of every Rejection
// literal is a refusal reason, that of every Warning literal a warning reason, and the reason
// of every Event (Recorder.Eventf, or EventReporter.eventf, whose own Eventf passes its reason
// parameter on) is a documented Event reason, Became<State>, or a refusal's or a warning's own
// reason.
func TestControllerReasonsAtTheirSource(t *testing.T) {
	files := parseDir(t, ".")
	consts := reasonConsts(files)
	constValue := func(e ast.Expr) (string, bool) {
		id, ok := e.(*ast.Ident)
		if !ok {
			return "", false
		}
		v, ok := consts[id.Name]
		return v, ok
	}
	var rejections, warnings, events int
	for _, gf := range files {
		ast.Inspect(gf.f, func(n ast.Node) bool {
			if fd, ok := n.(*ast.FuncDecl); ok && fd.Name.Name == "eventf" {
				// Its Eventf passes on the reason its callers gave, checked at each call.
				return false
			}
			switch n := n.(type) {
			case *ast.CompositeLit:
				id, ok := n.Type.(*ast.Ident)
				if !ok || (id.Name != "Rejection" && id.Name != "Warning") {
					return true
				}
				set := refusalReasons
				if id.Name == "Rejection" {
					rejections++
				} else {
					warnings++
					set = warningReasons
				}
				var reason ast.Expr
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Reason" {
						reason = kv.Value
					}
				}
				if v, ok := constValue(reason); !ok || !slices.Contains(set, v) {
					t.Errorf("%s: a %s whose reason is not one of its reason constants", gf.name, id.Name)
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Eventf" && sel.Sel.Name != "eventf") || len(n.Args) < 4 {
					return true
				}
				events++
				switch r := n.Args[3].(type) {
				case *ast.Ident:
					if v, ok := constValue(r); !ok || !slices.Contains(EventReasons(), v) {
						t.Errorf("%s: an Event with reason %s, not a documented Event reason", gf.name, r.Name)
					}
				case *ast.CallExpr:
					if f, ok := r.Fun.(*ast.Ident); !ok || f.Name != "becameReason" {
						t.Errorf("%s: an Event whose reason is computed otherwise than by becameReason", gf.name)
					}
				case *ast.SelectorExpr:
					if x, ok := r.X.(*ast.Ident); !ok || (x.Name != "refusal" && x.Name != "warning") || r.Sel.Name != "Reason" {
						t.Errorf("%s: an Event whose reason is a field other than a refusal's or a warning's Reason", gf.name)
					}
				default:
					t.Errorf("%s: an Event whose reason is not a documented constant", gf.name)
				}
			}
			return true
		})
	}
	if rejections < 5 || warnings < 1 || events < 5 {
		t.Errorf("found %d Rejection literals, %d Warning literals and %d Events: the scan is broken", rejections, warnings, events)
	}
}

// The conditions' reasons are exactly the documented ones: each listed reason comes out of
// some status, and nothing else does.
func TestConditionReasonsProduced(t *testing.T) {
	at := metav1.NewTime(time.Unix(1_800_000_000, 0))
	n := func(name, state, addr string, foreign ...v1alpha1.ForeignRouterStatus) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Name: name, State: state, Address: addr, LastTransitionTime: &at, ForeignRouters: foreign}
	}
	stranger := v1alpha1.ForeignRouterStatus{Address: "198.18.0.50", Addresses: []string{"198.18.0.200"}, LastSeen: at}
	produced := map[string]bool{}
	for _, nodes := range [][]v1alpha1.NodeStatus{
		nil,
		{n("a", "Master", "198.18.0.11")},
		{n("a", "Master", "198.18.0.11"), n("b", "Master", "198.18.0.12")},
		{n("a", "Backup", "198.18.0.11"), n("b", "Fault", "198.18.0.12")},
		{n("a", "Fault", "198.18.0.11", stranger)},
	} {
		for _, c := range Summarize(nodes, 1, 51).Conditions {
			produced[c.Reason] = true
			if !slices.Contains(conditionReasons, c.Reason) {
				t.Errorf("condition %s has reason %q, which conditionReasons does not list", c.Type, c.Reason)
			}
		}
	}
	for _, r := range conditionReasons {
		if !produced[r] {
			t.Errorf("condition reason %q is never produced", r)
		}
	}
}
