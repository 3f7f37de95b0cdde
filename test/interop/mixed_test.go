package interop

import (
	"slices"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp/packet"
)

// mixed is a lab of N nodes, each running one speaker of one VRRP group: any mix of
// kube-vrrp, keepalived and FRR. It is pair (pair_test.go) generalised beyond keepalived
// and kube-vrrp and beyond two routers. Whether a node holds the VIP is asked with
// lab.Node.Serves, because FRR keeps a BACKUP's addresses bound on a protodown macvlan.
type mixed struct {
	t  *testing.T
	l  *lab.Lab
	g  group
	sp []speaker // node i+1 runs sp[i]
	// failedOver is when the last takeover (failover or hand back) was complete; lastTo took over.
	failedOver time.Time
	lastTo     speaker
}

// newMixed builds a lab with one node per entry of mk, whose speakers mk makes.
func newMixed(t *testing.T, g group, mk ...func(*lab.Node) speaker) *mixed {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: len(mk), Nice: nice})
	m := &mixed{t: t, l: l, g: g}
	for i, f := range mk {
		m.sp = append(m.sp, f(l.Node(i+1)))
	}
	return m
}

func (m *mixed) nodes() []*lab.Node { return m.l.Nodes() }

// byPriority returns the speakers, highest priority first.
func (m *mixed) byPriority() []speaker {
	s := slices.Clone(m.sp)
	slices.SortFunc(s, func(a, b speaker) int { return b.Priority() - a.Priority() })
	return s
}

// nodesOf returns the nodes of ss in node order (as lab.WaitServingHolders compares them).
func (m *mixed) nodesOf(ss ...speaker) []*lab.Node {
	var out []*lab.Node
	for _, s := range m.sp {
		if slices.Contains(ss, s) {
			out = append(out, s.Node())
		}
	}
	return out
}

// start starts want, the highest priority, waits until it serves the VIP, then starts the
// others: they must hear it and stay BACKUP. It then checks that want alone serves the VIP,
// the client reaches it there, want says MASTER and the others BACKUP.
//
// Not all at once, as pair.start does: a lower-priority router that comes up first may be
// MASTER for an interval and announce the VIP before it hears the winner, and FRR, as the
// winner, announces nothing on hearing it (see handback). The client then keeps the loser's
// MAC until its neighbour entry fails its probes (8.3 s for IPv6 in the lab), which the test
// would measure as an outage of the next fault.
func (m *mixed) start(want speaker) {
	m.t.Helper()
	begin := time.Now()
	want.Start()
	if err := lab.WaitServingHolders(m.nodes(), m.g.vip(), m.nodesOf(want), 5*m.g.Interval+10*time.Second); err != nil {
		m.t.Fatalf("%s alone: %v", want, err)
	}
	m.t.Logf("%s (priority %d) MASTER %v after start", want, want.Priority(), time.Since(begin).Round(time.Millisecond))
	for _, s := range m.sp {
		if s != want {
			s.Start()
		}
	}
	for _, s := range m.sp {
		if err := s.WaitState(s == want, 5*m.g.Interval+10*time.Second); err != nil {
			m.t.Fatalf("election: %v", err)
		}
	}
	m.expectSoleHolder(want, 2*time.Second)
	m.expectStates(want)
}

// expectSoleHolder checks that exactly s serves the VIP (within timeout) and that the client
// reaches the VIP there.
func (m *mixed) expectSoleHolder(s speaker, timeout time.Duration) {
	m.t.Helper()
	if err := lab.WaitServingHolders(m.nodes(), m.g.vip(), m.nodesOf(s), timeout); err != nil {
		m.t.Errorf("want %s alone serving the VIP: %v", s, err)
		return
	}
	m.expectClientReaches(s, 3*time.Second)
}

func (m *mixed) expectClientReaches(s speaker, timeout time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		who, err := m.l.WhoAnswers(m.g.vip().Addr(), time.Second)
		if err == nil && who == s.Node().Name {
			return
		}
		if time.Now().After(deadline) {
			m.t.Errorf("client reaches %s at %q (%v), want %s", m.g.vip().Addr(), who, err, s)
			return
		}
	}
}

// expectStates checks that master says MASTER and every other speaker still running and
// connected (not in out) says BACKUP: they agree on who is MASTER.
func (m *mixed) expectStates(master speaker, out ...speaker) {
	m.t.Helper()
	for _, s := range m.sp {
		if slices.Contains(out, s) {
			continue
		}
		if err := s.WaitState(s == master, 2*time.Second); err != nil {
			m.t.Error(err)
		}
	}
}

// budget bounds a failover or hand back measurement, as pair.budget.
func (m *mixed) budget() time.Duration { return 10*m.g.Interval + 10*time.Second }

// failover takes from (the MASTER) away with f and checks that to takes over: the client
// reaches the VIP there, and to says MASTER. down lists speakers already stopped or cut off
// (they are not asked for their state). It returns what the client saw.
func (m *mixed) failover(f fault, from, to speaker, down ...speaker) lab.Outage {
	m.t.Helper()
	vip := m.g.vip()
	inject := from.Node().CutLink
	if f == sigterm {
		inject = sigtermOf(from)
	}
	out, err := m.l.MeasureOutage(m.t.Context(), vip.Addr(), inject,
		lab.OutageOptions{AwaitNode: to.Node().Name, Timeout: m.budget()})
	m.t.Logf("failover (%s of %s MASTER to %s): %s", f, from, to, out)
	if err != nil {
		m.t.Fatalf("failover: %v; %s", err, out.Result)
	}
	if out.Before != from.Node().Name || out.After != to.Node().Name {
		m.t.Errorf("client answered by %s before and %s after, want %s then %s", out.Before, out.After, from.Node().Name, to.Node().Name)
	}
	// Who serves the VIP now: to, and after a link cut from too (it keeps its carrier, hears
	// nothing and stays MASTER on its side), and any speaker cut off earlier.
	serving := []speaker{to}
	for _, s := range append([]speaker{from}, down...) {
		if f == linkCut && s == from || s != from && !s.Proc().Exited() {
			serving = append(serving, s)
		}
	}
	if f == sigterm {
		if err := from.Proc().Wait(10 * time.Second); err != nil {
			m.t.Errorf("%s after SIGTERM: exit %v", from, err)
		}
	}
	if err := lab.WaitServingHolders(m.nodes(), vip, m.nodesOf(serving...), 2*time.Second); err != nil {
		m.t.Error(err)
	}
	m.expectStates(to, append([]speaker{from}, down...)...)
	m.failedOver, m.lastTo = time.Now(), to
	return out
}

// waitQuiet waits until the last new MASTER's late announcements are over and the client's
// neighbour entry for the VIP is past its locktime (see quiet).
func (m *mixed) waitQuiet() {
	if m.lastTo == nil {
		return
	}
	if d := time.Until(m.failedOver.Add(m.lastTo.Quiet())); d > 0 {
		time.Sleep(d)
	}
}

// handback brings back after failover(f): after sigterm it is started again, comes up BACKUP
// and preempts loser (the lower-priority MASTER), announcing the VIP; after linkCut its link
// is restored and the split brain heals. down lists speakers still stopped or cut off.
//
// As in pair.handback, after a link cut the client follows only if the winner announces the
// VIP again, which kube-vrrp and keepalived do when, as MASTER, they hear a lower-priority
// advert, and FRR 8.4 never does (it announces only on becoming MASTER). So the client's
// recovery is asserted only when the winner re-announces and a capture shows it heard a
// lower-priority advert; otherwise it is logged. ok reports whether the client followed.
func (m *mixed) handback(f fault, back, loser speaker, down ...speaker) (out lab.Outage, ok bool) {
	m.t.Helper()
	vip := m.g.vip()
	down = slices.DeleteFunc(slices.Clone(down), func(s speaker) bool { return s == back })
	m.waitQuiet()
	var err error
	switch f {
	case sigterm:
		out, err = m.l.MeasureOutage(m.t.Context(), vip.Addr(), func() error { back.Start(); return nil },
			lab.OutageOptions{AwaitNode: back.Node().Name, Settle: 300 * time.Millisecond, Timeout: m.budget()})
		m.t.Logf("hand back (%s restarted, preempts %s): %s", back, loser, out)
		if err != nil {
			m.t.Errorf("hand back: %v; %s", err, out.Result)
		}
	case linkCut:
		c := startCapture(m.t, back.Node())
		out, err = m.l.MeasureOutage(m.t.Context(), vip.Addr(), back.Node().RestoreLink,
			lab.OutageOptions{AwaitNode: back.Node().Name, Settle: 300 * time.Millisecond, Timeout: 5*m.g.Interval + 3*time.Second})
		frames := c.stop(m.t)
		heardLower := false
		for _, fr := range from(frames, loser.Src()) {
			if fr.Adv != nil && fr.Adv.Priority != 0 && fr.At.After(out.FaultAt) {
				heardLower = true
			}
		}
		switch {
		case heardLower && back.Reannounces():
			m.t.Logf("hand back (link of %s restored; it heard %s's lower priority and re-announced): %s", back, loser, out)
			if err != nil {
				m.t.Errorf("hand back: %v; %s", err, out.Result)
			}
		case err != nil:
			why := "stepped down before it advertised"
			if heardLower {
				why = "advertised its lower priority"
			}
			still := "the client still sends to " + loser.Node().Name + "'s MAC"
			for _, r := range out.Result.Replies {
				if r.Node == loser.Node().Name && r.Sent.After(out.FaultAt.Add(time.Second)) {
					// FRR's protodown macvlan still receives (lab.TestFRRBackupStillReceives).
					still += ", and " + loser.String() + ", BACKUP now, still answers it"
					break
				}
			}
			m.t.Logf("hand back (link of %s restored): %s %s, and %s announced nothing (re-announces on a lower priority: %v); "+
				"%s: %v (%s)", back, loser, why, back, back.Reannounces(), still, err, out)
		default:
			m.t.Logf("hand back (link of %s restored): no re-announcement expected (heard lower %v, re-announces %v), "+
				"yet the client followed: %s", back, heardLower, back.Reannounces(), out)
		}
	}
	serving := []speaker{back}
	for _, s := range down {
		if s != back && !s.Proc().Exited() {
			serving = append(serving, s)
		}
	}
	if err := lab.WaitServingHolders(m.nodes(), vip, m.nodesOf(serving...), 5*m.g.Interval+5*time.Second); err != nil {
		m.t.Errorf("after the hand back: %v", err)
	}
	m.expectStates(back, down...)
	ok = err == nil && out.After == back.Node().Name
	if f == sigterm || ok {
		m.expectClientReaches(back, 3*time.Second)
	}
	m.failedOver, m.lastTo = time.Now(), back
	return out, ok
}

// rejoin restores the link of cut, a lower-priority router cut off earlier (still MASTER on
// its side), while master serves the VIP: the split brain heals without moving the VIP, cut
// steps down, and the client keeps reaching master throughout. down lists speakers still
// stopped or cut off.
func (m *mixed) rejoin(cut, master speaker, down ...speaker) lab.Outage {
	m.t.Helper()
	down = slices.DeleteFunc(slices.Clone(down), func(s speaker) bool { return s == cut })
	m.waitQuiet()
	out, err := m.l.MeasureOutage(m.t.Context(), m.g.vip().Addr(), cut.Node().RestoreLink,
		lab.OutageOptions{AwaitNode: master.Node().Name, Timeout: m.budget()})
	m.t.Logf("rejoin (link of %s restored, %s stays MASTER): %s", cut, master, out)
	if err != nil {
		m.t.Errorf("rejoin: %v; %s", err, out.Result)
	}
	if out.After != master.Node().Name {
		m.t.Errorf("client answered by %s after the rejoin, want %s", out.After, master.Node().Name)
	}
	serving := []speaker{master}
	for _, s := range down {
		if !s.Proc().Exited() {
			serving = append(serving, s)
		}
	}
	if err := lab.WaitServingHolders(m.nodes(), m.g.vip(), m.nodesOf(serving...), 5*m.g.Interval+5*time.Second); err != nil {
		m.t.Errorf("after the rejoin: %v", err)
	}
	m.expectStates(master, down...)
	return out
}

// checkWire checks the adverts each speaker sent in frames, as pair.checkWire does: every one
// decodes with kube-vrrp's codec and encodes again to the same bytes, with the checksum form
// wantForm[s] ("" = any), TTL 255, the group's version, VRID and interval, the speaker's
// address list, and the multicast destination.
func (m *mixed) checkWire(frames []frame, wantForm map[speaker]string) {
	m.t.Helper()
	for _, s := range m.sp {
		got := from(frames, s.Src())
		if len(got) == 0 {
			m.t.Errorf("no advert from %s (%s) captured:\n%s", s, s.Src(), dumpFrames(frames))
			continue
		}
		bad := 0
		for _, f := range got {
			if !m.checkFrame(s, f, wantForm[s]) {
				bad++
			}
			if bad > 3 {
				break
			}
		}
		if bad == 0 {
			m.t.Logf("%d adverts from %s decoded and re-encoded byte for byte, e.g. %s", len(got), s, got[0])
		}
	}
}

func (m *mixed) checkFrame(s speaker, f frame, form string) bool {
	m.t.Helper()
	if f.Err != nil {
		m.t.Errorf("advert from %s does not decode: %s", s, f)
		return false
	}
	a := f.Adv
	ok := true
	fail := func(format string, args ...any) {
		m.t.Errorf("advert from %s: "+format+": %s", append(append([]any{s}, args...), f)...)
		ok = false
	}
	if f.TTL != 255 {
		fail("TTL %d, want 255", f.TTL)
	}
	if int(a.Version) != m.g.Version || int(a.VRID) != m.g.VRID {
		fail("version %d VRID %d, want %d and %d", a.Version, a.VRID, m.g.Version, m.g.VRID)
	}
	if a.Interval != m.g.Interval {
		fail("interval %v, want %v", a.Interval, m.g.Interval)
	}
	if want := s.Adverts(); !slices.Equal(a.Addresses, want) {
		fail("addresses %v, want %v", a.Addresses, want)
	}
	wantDst := packet.MulticastIPv4
	if f.Src.Is6() {
		wantDst = packet.MulticastIPv6
	}
	if f.Dst != wantDst {
		fail("destination %s, want %s", f.Dst, wantDst)
	}
	if m.g.Version == 2 && (a.AuthType != packet.AuthNone || a.AuthData != [packet.PassLen]byte{}) {
		fail("auth type %d data %q, want none", a.AuthType, a.AuthData)
	}
	got := checksumForm(f)
	if got == "other" || (form != "" && got != form) {
		fail("checksum form %s, want %s", got, form)
	}
	return ok
}
