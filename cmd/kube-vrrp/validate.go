package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
)

func cmdValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files fileList
	fs.Var(&files, "f", "manifest `FILE` with VirtualIP and Secret objects (repeatable; - reads standard input)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp validate -f FILE...")
		fmt.Fprintln(stderr, "Checks manifests with the rules of the CRD and the agent; applies nothing.")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args, files.Set); err != nil {
		return reportFlagError(stderr, "validate", err)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "kube-vrrp validate: no manifest given: use -f FILE")
		return exitUsage
	}

	set, err := manifest.Load(files...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if len(set.VirtualIPs) == 0 {
		fmt.Fprintf(stderr, "%s: no VirtualIP found\n", strings.Join(files, ", "))
		return exitError
	}
	failed := false
	for _, p := range check(set) {
		if len(p.errs) == 0 {
			fmt.Fprintf(stdout, "ok %s\n", p.name)
			continue
		}
		failed = true
		for _, e := range p.errs {
			fmt.Fprintln(stderr, e)
		}
	}
	if failed {
		return exitError
	}
	return exitOK
}

// result is what check found wrong with one VirtualIP.
type result struct {
	name string
	// errs are complete lines: <file>: VirtualIP "<name>": <field>: <message>.
	errs []string
}

// check applies every rule that needs no node to each VirtualIP of set: desired.Validate, and
// that its authentication Secret exists, has the key, and holds a usable password.
func check(set *manifest.Set) []result {
	out := make([]result, 0, len(set.VirtualIPs))
	for i := range set.VirtualIPs {
		vip := &set.VirtualIPs[i]
		prefix := fmt.Sprintf("%s: VirtualIP %q: ", set.Source(vip.Name), vip.Name)
		r := result{name: vip.Name}
		authOK := true
		for _, e := range desired.Validate(vip) {
			r.errs = append(r.errs, prefix+e.Error())
			if strings.HasPrefix(e.Field, "spec.authentication") || e.Field == "spec.version" {
				authOK = false
			}
		}
		if vip.Spec.Authentication != nil && authOK {
			pw, err := set.Password(vip)
			switch {
			case err != nil:
				// Password's errors start with `VirtualIP "<name>": `.
				r.errs = append(r.errs, set.Source(vip.Name)+": "+err.Error())
			default:
				if fe := desired.ValidatePassword(vip, pw); fe != nil {
					r.errs = append(r.errs, prefix+fe.Error())
				}
			}
		}
		out = append(out, r)
	}
	return out
}
