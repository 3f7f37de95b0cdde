package lab

import (
	"context"
	"errors"
)

// ExecKubeVRRPCommand starts kube-vrrp on n with a command line written elsewhere, such as a
// static Pod's container args (`run -f /etc/kube-vrrp/vip.yaml --node cp1`): bin then args, as
// given, then --log-format json, --state-dir (the node's, StateDir) and --events (a new events
// file, read by KubeVRRPEvents and KubeVRRPTransitions), which the lab needs and which, coming
// last, override any the command sets. Its log is in n.Dir, like ExecKubeVRRP's; the lab stops
// the process on Close at the latest.
func (n *Node) ExecKubeVRRPCommand(bin string, args ...string) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("kube-vrrp: no command")
	}
	name := n.lab.procName(n.Name, "kube-vrrp")
	state, err := n.StateDir(0)
	if err != nil {
		return nil, err
	}
	events, err := n.EventsFile(name)
	if err != nil {
		return nil, err
	}
	argv := append([]string{bin}, args...)
	argv = append(argv, "--log-format", "json", "--state-dir", state, "--events", events)
	p, err := n.Exec(context.Background(), name, n.lab.speakerArgv(argv)...)
	if p != nil {
		p.EventsPath = events
	}
	return p, err
}
