package interop

import (
	"syscall"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// budget bounds a failover or hand back measurement: several Master_Down_Intervals and room
// for a loaded machine.
func (p *pair) budget() time.Duration { return 10*p.g.Interval + 10*time.Second }

// failover takes the MASTER away with f and checks that the BACKUP takes over: the client
// reaches the VIP there, the BACKUP holds it and logs MASTER. It returns what the client saw.
func (p *pair) failover(f fault) lab.Outage {
	p.t.Helper()
	vip := p.g.vip()
	var inject func() error
	switch f {
	case linkCut:
		inject = p.master.CutLink
	case sigterm:
		proc := p.proc(p.master)
		inject = func() error { return proc.Signal(syscall.SIGTERM) }
	}
	out, err := p.l.MeasureOutage(p.t.Context(), vip.Addr(), inject,
		lab.OutageOptions{AwaitNode: p.backup.Name, Timeout: p.budget()})
	p.t.Logf("failover (%s of %s MASTER): %s", f, p.speaker(p.master), out)
	if err != nil {
		p.t.Fatalf("failover: %v; %s", err, out.Result)
	}
	if out.Before != p.master.Name || out.After != p.backup.Name {
		p.t.Errorf("client answered by %s before and %s after, want %s then %s", out.Before, out.After, p.master.Name, p.backup.Name)
	}
	switch f {
	case linkCut:
		// The old MASTER keeps its carrier, hears nothing and keeps the VIP on its side.
		if err := lab.WaitHolders(p.nodes(), vip, p.nodes(), 2*time.Second); err != nil {
			p.t.Error(err)
		}
	case sigterm:
		// Graceful stop: priority 0, VIP removed, clean exit.
		proc := p.proc(p.master)
		if err := proc.Wait(10 * time.Second); err != nil {
			p.t.Errorf("%s after SIGTERM: exit %v", p.speaker(p.master), err)
		}
		if err := lab.WaitHolders(p.nodes(), vip, []*lab.Node{p.backup}, 2*time.Second); err != nil {
			p.t.Error(err)
		}
	}
	p.expectState(p.backup, true)
	p.failedOver = time.Now()
	return out
}

// quiet is how long a hand back waits after a failover completed (the client reached the
// BACKUP for a second): the new MASTER's delayed announcements are over by then (kube-vrrp
// repeats its burst 2 s after a takeover, keepalived 5 s after, garp_master_delay), and the
// client's neighbour entry for the VIP is older than its locktime (1 s), in which Linux
// ignores a gratuitous ARP that would move it. Otherwise the hand back's announcement could
// be ignored, or a late repeat of the failover's could make the hand back look better than
// it is. Failovers and hand backs are far apart in practice too.
const quiet = 5 * time.Second

func (p *pair) waitQuiet() {
	if d := time.Until(p.failedOver.Add(quiet)); d > 0 {
		time.Sleep(d)
	}
}

// handback brings the MASTER back after failover(f) and checks that it takes the VIP again
// and that, afterwards, it alone holds the VIP.
//
// After a sigterm the speaker is started again: it comes up BACKUP, hears the lower
// priority and preempts (kube-vrrp at once, keepalived when its Master_Down_Timer runs out),
// announcing the VIP; the client must follow.
//
// After a link-cut, re-attaching the link heals a split brain: both are MASTER, and the one
// with the lower priority steps down when it hears the other. Whether the client follows
// depends on the winner re-announcing the VIP, which both speakers do when they, as MASTER,
// hear a lower-priority advert (keepalived: "forcing new election" and gratuitous ARPs,
// kube-vrrp: RFC 9568 §6.4.3). If the loser hears the winner first, it steps down before
// it sends one: keepalived then steps down silently, kube-vrrp sends priority 0, which a
// kube-vrrp MASTER answers with a re-announcement but keepalived 2.2.7 only with an advert.
// Then nothing tells the client that the VIP moved until its neighbour entry for the VIP
// expires. So the client's recovery is asserted only when a capture on the winner shows it
// heard a lower-priority advert; otherwise it is logged.
func (p *pair) handback(f fault) lab.Outage {
	p.t.Helper()
	vip := p.g.vip()
	var out lab.Outage
	var err error
	p.waitQuiet()
	switch f {
	case sigterm:
		out, err = p.l.MeasureOutage(p.t.Context(), vip.Addr(), func() error { p.restart(p.master); return nil },
			lab.OutageOptions{AwaitNode: p.master.Name, Settle: 300 * time.Millisecond, Timeout: p.budget()})
		p.t.Logf("hand back (%s restarted, preempts): %s", p.speaker(p.master), out)
		if err != nil {
			p.t.Errorf("hand back: %v; %s", err, out.Result)
		}
	case linkCut:
		c := startCapture(p.t, p.master)
		out, err = p.l.MeasureOutage(p.t.Context(), vip.Addr(), p.master.RestoreLink,
			lab.OutageOptions{AwaitNode: p.master.Name, Settle: 300 * time.Millisecond, Timeout: 5*p.g.Interval + 3*time.Second})
		frames := c.stop(p.t)
		heardLower := false
		for _, fr := range from(frames, p.addr(p.backup)) {
			if fr.Adv != nil && fr.Adv.Priority != 0 && fr.At.After(out.FaultAt) {
				heardLower = true
			}
		}
		switch {
		case heardLower:
			p.t.Logf("hand back (link of %s restored; it heard %s's lower priority and re-announced): %s",
				p.speaker(p.master), p.speaker(p.backup), out)
			if err != nil {
				p.t.Errorf("hand back: %v; %s", err, out.Result)
			}
		case err != nil:
			p.t.Logf("hand back (link of %s restored): %s stepped down before it advertised, so %s never re-announced "+
				"the VIP; the client still sends to %s's MAC: %v (%s)",
				p.speaker(p.master), p.speaker(p.backup), p.speaker(p.master), p.backup.Name, err, out)
		default:
			p.t.Logf("hand back (link of %s restored): %s stepped down before it advertised, so the heal triggered no "+
				"re-announcement, yet the client followed: %s", p.speaker(p.master), p.speaker(p.backup), out)
		}
	}
	if err := lab.WaitHolders(p.nodes(), vip, []*lab.Node{p.master}, 5*p.g.Interval+5*time.Second); err != nil {
		p.t.Errorf("after the hand back: %v", err)
	}
	p.expectState(p.master, true)
	p.expectState(p.backup, false)
	if f == sigterm || out.After == p.master.Name {
		p.expectClientReaches(p.master, 3*time.Second)
	}
	return out
}
