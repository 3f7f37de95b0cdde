package interop

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// nice is the niceness of both speakers (lab.Options.Nice) and of the test process (its
// prober and responders). The lab shares a small machine with builds and fuzzers; a speaker
// that waits a second for the CPU misses adverts and takes over spuriously (keepalived then
// logs "A thread timer expired ... seconds ago"). Both speakers run at the same raised
// priority, as a production keepalived usually does (vrrp_priority), so the tests see the
// protocol, not the scheduler.
const nice = -10

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "interop tests:", err)
		}
	}
	os.Exit(m.Run())
}

// group is one VRRP group as both speakers are configured for it.
type group struct {
	VRID     int
	Version  int
	Interval time.Duration
	// VIPs are the addresses kube-vrrp's VirtualIP lists and, unless KeepalivedVIPs is set,
	// keepalived's virtual_ipaddress.
	VIPs []netip.Prefix
	// KeepalivedVIPs overrides keepalived's virtual_ipaddress (IPv6: a link-local first).
	KeepalivedVIPs []netip.Prefix
	// Password is auth_type PASS on both sides (v2); KubeVRRPPassword overrides kube-vrrp's.
	Password, KubeVRRPPassword string
	// Unicast makes both sides send to each other's address instead of the multicast group.
	Unicast bool
	// ChecksumMode is kube-vrrp's spec.checksumMode ("" = default, PseudoHeader).
	ChecksumMode string
}

func (g group) vip() netip.Prefix { return g.VIPs[0] }

// Priorities of the two sides: the MASTER is configured 110 and the BACKUP 100, the seed
// setup kube-vrrp replaces.
const (
	masterPriority = 110
	backupPriority = 100
)

// pair is a two-node lab with keepalived on n1 and kube-vrrp on n2.
type pair struct {
	t *testing.T
	l *lab.Lab
	g group

	ka, kv         *lab.Node // keepalived's node (n1) and kube-vrrp's (n2)
	kaPrio, kvPrio int
	kaProc, kvProc *lab.Proc
	master, backup *lab.Node // by configured priority
	failedOver     time.Time // when the last failover was complete
}

// direction says which speaker is configured as the MASTER.
type direction string

const (
	kubeVRRPMaster   direction = "kube-vrrp-master"
	keepalivedMaster direction = "keepalived-master"
)

var directions = []direction{kubeVRRPMaster, keepalivedMaster}

func newPair(t *testing.T, g group, d direction) *pair {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: 2, Nice: nice})
	p := &pair{t: t, l: l, g: g, ka: l.Node(1), kv: l.Node(2)}
	if d == kubeVRRPMaster {
		p.kvPrio, p.kaPrio = masterPriority, backupPriority
		p.master, p.backup = p.kv, p.ka
	} else {
		p.kaPrio, p.kvPrio = masterPriority, backupPriority
		p.master, p.backup = p.ka, p.kv
	}
	return p
}

func (p *pair) nodes() []*lab.Node { return []*lab.Node{p.ka, p.kv} }

// keepalivedConf renders keepalived.conf for the keepalived node.
func (p *pair) keepalivedConf() string {
	in := lab.VRRPInstance{
		VRID: p.g.VRID, Version: p.g.Version, AdvertInt: p.g.Interval, VIPs: p.g.VIPs, AuthPass: p.g.Password,
	}
	if p.g.KeepalivedVIPs != nil {
		in.VIPs = p.g.KeepalivedVIPs
	}
	var peers []*lab.Node
	if p.g.Unicast {
		peers = p.nodes()
	}
	return lab.KeepalivedConf(p.ka.Name, in.ForNode(p.ka, p.kaPrio, peers...))
}

// vipName is the VirtualIP's name, which kube-vrrp logs as "vip".
const vipName = "interop"

// kubeVRRPManifest renders the VirtualIP (and Secret) the kube-vrrp node runs.
func (p *pair) kubeVRRPManifest() string {
	g := p.g
	v := lab.VirtualIP{
		Name: vipName, VRID: g.VRID, Version: g.Version, Interface: p.kv.Interface,
		Addresses: g.VIPs, AdvertInt: g.Interval, Priority: p.kvPrio, AuthPass: g.Password,
	}
	if g.KubeVRRPPassword != "" {
		v.AuthPass = g.KubeVRRPPassword
	}
	if g.Unicast {
		v = v.WithPeers(p.ka)
	}
	if g.ChecksumMode != "" {
		v.Extra = append(v.Extra, "checksumMode: "+g.ChecksumMode)
	}
	return v.String()
}

func (p *pair) startKeepalived() *lab.Proc {
	p.t.Helper()
	p.kaProc = p.ka.StartKeepalived(p.t, p.keepalivedConf())
	return p.kaProc
}

func (p *pair) startKubeVRRP() *lab.Proc {
	p.t.Helper()
	p.kvProc = p.kv.StartKubeVRRP(p.t, p.kubeVRRPManifest())
	return p.kvProc
}

// start starts both speakers and waits until the configured MASTER alone holds the VIP and
// the client reaches it there.
func (p *pair) start() {
	p.t.Helper()
	p.startKeepalived()
	p.startKubeVRRP()
	begin := time.Now()
	// Whichever speaker comes up first may be MASTER alone for Master_Down_Interval, until
	// the other one hears it or preempts it.
	if err := lab.WaitHolders(p.nodes(), p.g.vip(), []*lab.Node{p.master}, 5*p.g.Interval+10*time.Second); err != nil {
		p.t.Fatalf("election: %v", err)
	}
	p.t.Logf("%s (priority %d) MASTER %v after start", p.speaker(p.master), masterPriority, time.Since(begin).Round(time.Millisecond))
	p.expectSoleHolder(p.master, 2*time.Second)
	p.expectState(p.master, true)
	p.expectState(p.backup, false)
}

// addr returns the source address of n's adverts: its IPv4 address, or for IPv6 its
// link-local address (RFC 5798 §5.1.2.1; both speakers send from it).
func (p *pair) addr(n *lab.Node) netip.Addr {
	if p.g.vip().Addr().Is6() {
		if p.g.Unicast {
			return n.IPv6
		}
		return n.LinkLocal.WithZone("")
	}
	return n.IPv4
}

// speaker names the software on n, for logs.
func (p *pair) speaker(n *lab.Node) string {
	if n == p.ka {
		return "keepalived(" + n.Name + ")"
	}
	return "kube-vrrp(" + n.Name + ")"
}

func (p *pair) proc(n *lab.Node) *lab.Proc {
	if n == p.ka {
		return p.kaProc
	}
	return p.kvProc
}

func (p *pair) restart(n *lab.Node) *lab.Proc {
	if n == p.ka {
		return p.startKeepalived()
	}
	return p.startKubeVRRP()
}

// expectSoleHolder checks that exactly n holds the VIP (within timeout) and that the client
// reaches the VIP there.
func (p *pair) expectSoleHolder(n *lab.Node, timeout time.Duration) {
	p.t.Helper()
	if err := lab.WaitHolders(p.nodes(), p.g.vip(), []*lab.Node{n}, timeout); err != nil {
		p.t.Errorf("want %s alone holding the VIP: %v", p.speaker(n), err)
		return
	}
	p.expectClientReaches(n, 3*time.Second)
}

func (p *pair) expectClientReaches(n *lab.Node, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		who, err := p.l.WhoAnswers(p.g.vip().Addr(), time.Second)
		if err == nil && who == n.Name {
			return
		}
		if time.Now().After(deadline) {
			p.t.Errorf("client reaches %s at %q (%v), want %s", p.g.vip().Addr(), who, err, p.speaker(n))
			return
		}
	}
}

// expectState checks the state n's speaker last logged: MASTER if master, else BACKUP.
func (p *pair) expectState(n *lab.Node, master bool) {
	p.t.Helper()
	if n == p.ka {
		want := "BACKUP"
		if master {
			want = "MASTER"
		}
		if err := lab.WaitKeepalivedState(p.kaProc, "VI_1", want, 2*time.Second); err != nil {
			p.t.Error(err)
		}
		return
	}
	want := "Backup"
	if master {
		want = "Master"
	}
	if err := lab.WaitKubeVRRPState(p.kvProc, vipName, want, 2*time.Second); err != nil {
		p.t.Error(err)
	}
}

// fault is how a test takes the MASTER away.
type fault string

const (
	// linkCut detaches the MASTER's bridge port (carrier stays up: it stays MASTER on its
	// side); the hand back re-attaches it and the two MASTERs resolve the split.
	linkCut fault = "link-cut"
	// sigterm stops the MASTER's speaker gracefully (priority 0); the hand back starts it
	// again, and it preempts the lower-priority MASTER.
	sigterm fault = "sigterm"
)
