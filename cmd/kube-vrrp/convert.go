package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kube-vrrp/kube-vrrp/pkg/keepalived"
)

// nodeFiles is the repeatable --node NAME=FILE flag of convert.
type nodeFiles struct {
	names []string
	files map[string]string
}

func (n *nodeFiles) String() string { return strings.Join(n.names, ",") }

func (n *nodeFiles) Set(s string) error {
	name, file, ok := strings.Cut(s, "=")
	if !ok || name == "" || file == "" {
		return fmt.Errorf("%q is not NAME=FILE", s)
	}
	if n.files == nil {
		n.files = map[string]string{}
	}
	if _, dup := n.files[name]; dup {
		return fmt.Errorf("node %q is given twice", name)
	}
	n.names = append(n.names, name)
	n.files[name] = file
	return nil
}

// cmdConvert prints VirtualIP (and Secret) manifests equivalent to keepalived configurations:
// one file, or one file per node of a pair merged into one VirtualIP per VRRP group. What
// kube-vrrp cannot express is printed as warnings on stderr; nothing is dropped silently.
func cmdConvert(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nodes nodeFiles
	fs.Var(&nodes, "node", "`NAME=FILE`: the keepalived.conf of node NAME (repeat for each node to merge a pair)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kube-vrrp convert keepalived.conf")
		fmt.Fprintln(stderr, "       kube-vrrp convert --node lb1=lb1.conf --node lb2=lb2.conf")
		fmt.Fprintln(stderr, "Prints VirtualIP (and Secret) YAML equivalent to keepalived configurations; warnings go to stderr.")
		fs.PrintDefaults()
	}
	var files []string
	err := parseInterspersed(fs, args, func(a string) error { files = append(files, a); return nil })
	if err != nil {
		return reportFlagError(stderr, "convert", err)
	}
	switch {
	case len(files) == 1 && len(nodes.names) == 0:
	case len(files) == 0 && len(nodes.names) > 0:
	default:
		return reportFlagError(stderr, "convert", errors.New("give one keepalived.conf, or --node NAME=FILE for each node"))
	}

	var res *keepalived.Result
	if len(files) == 1 {
		cfg, err := keepalived.LoadFile(files[0], nil)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		if res, err = keepalived.Convert(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
	} else {
		per := make(map[string]*keepalived.Config, len(nodes.names))
		for _, name := range nodes.names {
			// keepalived's config id defaults to the host name, so @lb1 lines of a shared
			// template apply to node lb1.
			cfg, err := keepalived.LoadFile(nodes.files[name], &keepalived.Options{ConfigID: name})
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError
			}
			per[name] = cfg
		}
		if res, err = keepalived.Merge(per); err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	out, err := res.YAML()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if _, err := stdout.Write(out); err != nil {
		return exitError
	}
	return exitOK
}
