package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/desired"
	"github.com/kube-vrrp/kube-vrrp/pkg/manifest"
)

func cmdValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files fileList
	var execProbes optionalBool
	fs.Var(&files, "f", "manifest `FILE` with VirtualIP and Secret objects (repeatable; - reads standard input)")
	fs.Var(&execProbes, "enable-exec-probes", "check for an agent or run with (true) or without (false) exec enabled: without it, spec.notify "+
		"is an error, as run says; not given: a warning")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp validate -f FILE... [--enable-exec-probes=true|false]")
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
	results := check(set) // in the order of set.VirtualIPs
	if !execProbes.value {
		// spec.notify runs only where exec is enabled: an error where it is not (run refuses
		// it), a warning where that is not known.
		for i := range set.VirtualIPs {
			vip := &set.VirtualIPs[i]
			if vip.Spec.Notify == nil {
				continue
			}
			line := fmt.Sprintf("%s: VirtualIP %q: %s", set.Source(vip.Name), vip.Name, notifyDisabledText(vip.Spec.Notify, !execProbes.set))
			if execProbes.set {
				results[i].errs = append(results[i].errs, line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		}
	}
	failed := false
	for _, p := range results {
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

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ set, value bool }

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatBool(b.value)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.set, b.value = true, v
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

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
