package keepalived

import (
	"fmt"
	"strings"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// notifyFields maps keepalived's notify keywords to spec.notify.
var notifyFields = map[string]func(*v1alpha1.NotifySpec) *[]string{
	"notify_master": func(n *v1alpha1.NotifySpec) *[]string { return &n.Master },
	"notify_backup": func(n *v1alpha1.NotifySpec) *[]string { return &n.Backup },
	"notify_fault":  func(n *v1alpha1.NotifySpec) *[]string { return &n.Fault },
	"notify_stop":   func(n *v1alpha1.NotifySpec) *[]string { return &n.Stop },
	"notify":        func(n *v1alpha1.NotifySpec) *[]string { return &n.All },
}

// notifyExecNote is what every VirtualIP with notify commands needs to know.
const notifyExecNote = "notify commands run only where exec is enabled (--enable-exec-probes, chart value probes.exec.enabled): " +
	"without it kube-vrrp run refuses the VirtualIP, and an agent runs the VirtualIP without them and reports NotifyDisabled. They run where kube-vrrp runs (under the chart, in the agent's container: the programs must exist there), " +
	"as its user, without a shell and with an empty environment, one at a time in the order of the changes; " +
	"one still running after notify.timeout (10s unless set, at most 10m) is killed, where keepalived started each without waiting for it"

// notifies converts an instance's notify_master, notify_backup, notify_fault, notify_stop and
// notify into spec.notify, each command split into argv without a shell as keepalived 2.x
// splits it, and reports the rest (notify_deleted, notify_master_rx_lower_pri).
func (c *converter) notifies(d *draft, where string) {
	var spec v1alpha1.NotifySpec
	first := map[string]Pos{}
	var at, statesAt Pos
	var states []string
	for _, n := range d.inst.Notify {
		field, ok := notifyFields[n.Keyword]
		if !ok {
			c.otherNotify(n, where)
			continue
		}
		if p, dup := first[n.Keyword]; dup {
			c.warnf(n.Pos, "%s: %s is given again (first at %s); keepalived keeps the first one, and so does the conversion", where, n.Keyword, p.lineString())
			continue
		}
		first[n.Keyword] = n.Pos
		argv := c.notifyCommand(n, where)
		if argv == nil {
			continue
		}
		*field(&spec) = argv
		if at.Line == 0 {
			at = n.Pos
		}
		if n.Keyword == "notify" {
			d.notifyAll = n.Pos // its arguments are reported once the VirtualIP has a name
			continue
		}
		if len(states) == 0 {
			statesAt = n.Pos
		}
		states = append(states, n.Keyword)
	}
	if at.Line == 0 {
		return
	}
	d.spec.Notify = &spec
	c.warnf(at, "%s: %s", where, notifyExecNote)
	if len(states) > 0 {
		it := "it"
		if len(states) > 1 {
			it = "each"
		}
		c.warnf(statesAt, "%s: %s: keepalived ran %s with its own arguments only; kube-vrrp appends five: INSTANCE, the VirtualIP's name, the new state (MASTER, BACKUP, FAULT or STOP), the priority and the reason, so the program must accept (or ignore) them", where, strings.Join(states, ", "), it)
	}
}

// notifyAllWarning describes the arguments a generic notify gets, once the VirtualIP's name
// is known; ok is false when the instance has none.
func notifyAllWarning(d *draft, vipName string) (Warning, bool) {
	if d.notifyAll.Line == 0 {
		return Warning{}, false
	}
	msg := "notify: kube-vrrp passes keepalived's four arguments in the same order (INSTANCE, the name, the new state: MASTER, BACKUP, FAULT or STOP, the priority) and a fifth, the reason (one CamelCase word)"
	if vipName != d.inst.Name {
		msg += fmt.Sprintf("; the name is the VirtualIP's, %s, where keepalived passed %s", vipName, d.inst.Name)
	}
	return Warning{Pos: d.notifyAll, Msg: "vrrp_instance " + d.inst.Name + ": " + msg}, true
}

// notifyCommand splits a notify command into argv as keepalived 2.x does (no shell), or
// reports why it cannot be converted.
func (c *converter) notifyCommand(n Notify, where string) []string {
	in := where + ": " + n.Keyword
	if !c.text(n.Pos, in, n.Command) {
		return nil
	}
	if len(n.Args) > 0 {
		as := "user " + n.Args[0]
		if len(n.Args) > 1 {
			as += " and group " + n.Args[1]
		}
		c.warnf(n.Pos, "%s: keepalived runs it as %s; kube-vrrp runs notify commands as the agent's user. (keepalived reads the words after an unquoted command as user and group: to pass them as arguments, quote the whole command)", in, as)
		if len(n.Args) > 2 {
			c.warnf(n.Pos, "%s: words after the group (%s) are ignored by keepalived, and here too", in, strings.Join(n.Args[2:], " "))
		}
	}
	argv, ok := splitCommand(n.Command)
	switch {
	case !ok:
		c.errorf(n.Pos, "%s %q: the quotes are unbalanced; write the command so that it splits into words as intended", in, n.Command)
		return nil
	case len(argv) == 0 || argv[0] == "":
		c.errorf(n.Pos, "%s: the command is empty; give the program's absolute path", in)
		return nil
	case !strings.HasPrefix(argv[0], "/"):
		c.errorf(n.Pos, "%s %q: %s is not an absolute path, and kube-vrrp runs notify commands without a PATH lookup; write the program's absolute path (\"command -v %s\" on the host shows the one keepalived found)", in, n.Command, argv[0], argv[0])
		return nil
	case len(argv) > v1alpha1.MaxExecArgs:
		c.errorf(n.Pos, "%s: the command has %d words; spec.notify holds at most %d (put the command in a script)", in, len(argv), v1alpha1.MaxExecArgs)
		return nil
	}
	for _, a := range argv {
		if len(a) > v1alpha1.MaxExecArgLength {
			c.errorf(n.Pos, "%s: a word of the command is longer than %d bytes, which spec.notify cannot hold (put the command in a script)", in, v1alpha1.MaxExecArgLength)
			return nil
		}
	}
	if hasShellSyntax(n.Command) {
		c.warnf(n.Pos, "%s (%s): it has shell syntax (%s), but keepalived 2.x ran it without a shell, passing these characters to the program as they are, and so does kube-vrrp; if a shell was meant, put the command in a script and give the script's absolute path", in, n.Command, usedShellChars(n.Command))
	}
	if len(credentialsIn(n.Command)) > 0 {
		c.warnf(n.Pos, "%s (%s): the command holds credentials, which spec.notify keeps as written since it needs them: whoever can read VirtualIPs can read them; prefer a script that reads them from a file", in, n.Command)
	}
	return argv
}

// otherNotify reports the notify keywords kube-vrrp has no field for.
func (c *converter) otherNotify(n Notify, where string) {
	switch n.Keyword {
	case "notify_deleted":
		script := ""
		if n.Command != "" {
			script = fmt.Sprintf(", and its command %q does not run", n.Command)
		}
		c.warnf(n.Pos, "%s: notify_deleted is not converted%s: kube-vrrp has no DELETED state; a VirtualIP that is deleted, or no longer selects the node, stops its instance there, which runs notify.stop (and notify.all with STOP)", where, script)
	case "notify_master_rx_lower_pri":
		c.warnf(n.Pos, "%s: notify_master_rx_lower_pri %q is not converted: kube-vrrp has no such hook; a MASTER that hears a lower-priority master answers it itself, with an advert and a new announcement of its addresses (docs/design.md §4.4), but runs nothing, so state the script restored outside the node (a cloud provider's secondary address) is not restored", where, n.Command)
	default:
		c.warnf(n.Pos, "%s: %s %q is not converted: no kube-vrrp equivalent", where, n.Keyword, n.Command)
	}
}

// groupNotify reports a sync group's notify scripts, which kube-vrrp has nothing to attach to.
func (c *converter) groupNotify(n Notify, group string) {
	c.warnf(n.Pos, "vrrp_sync_group %s: %s %q is not converted: kube-vrrp has no sync groups, so nothing runs on a group's changes; to run it on a member's changes, put it in that vrrp_instance, where it becomes the VirtualIP's spec.notify (run once per VirtualIP; a generic notify then gets INSTANCE and the VirtualIP's name where keepalived passed GROUP and the group's name)", group, n.Keyword, n.Command)
}
