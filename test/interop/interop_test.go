package interop

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

var (
	vip4 = netip.MustParsePrefix("198.18.0.200/24")
	vip6 = netip.MustParsePrefix("2001:db8::200/64")
)

// TestV2PassMulticast runs VRRPv2 with auth_type PASS over multicast at 1 s (VRRPv2 counts
// whole seconds), both directions: elect, fail over on a link cut, hand back when the link
// returns. A wrong password must split the group: each side drops the other's adverts.
func TestV2PassMulticast(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 52, Version: 2, Interval: time.Second, VIPs: []netip.Prefix{vip4}, Password: "s3cret"}
	for _, d := range directions {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newPair(t, g, d)
			c := startCapture(t, p.backup) // it hears the MASTER, and sends when it takes over
			p.start()
			p.failover(linkCut)
			p.handback(linkCut)
			p.checkWire(c.stop(t), nil)
		})
	}
	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		g := g
		g.KubeVRRPPassword = "wr0ng"
		p := newPair(t, g, kubeVRRPMaster)
		c := startCapture(t, p.ka)
		p.startKeepalived()
		p.startKubeVRRP()
		// Neither accepts the other's adverts, so each runs out its Master_Down_Timer and
		// stays MASTER: both hold the VIP.
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 5*g.Interval+10*time.Second); err != nil {
			t.Fatalf("with different passwords: %v", err)
		}
		time.Sleep(3 * g.Interval) // and they stay so, adverts going both ways
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 0); err != nil {
			t.Error(err)
		}
		if err := p.kaProc.WaitLog("received an invalid passwd!", 0, 2*time.Second); err != nil {
			t.Errorf("keepalived did not reject kube-vrrp's password: %v", err)
		}
		if _, err := lab.WaitKubeVRRPEvent(p.kvProc, 0, 2*time.Second, lab.Dropped("auth_failed")); err != nil {
			t.Errorf("kube-vrrp did not count keepalived's adverts as auth_failed: %v", err)
		}
		p.expectState(p.ka, true)
		p.expectState(p.kv, true)
		p.checkWire(c.stop(t), nil)
	})
}

// TestV3MulticastIPv4 runs VRRPv3 over IPv4 multicast at 100 ms with keepalived's default
// checksum (RFC 5798 with the IPv4 pseudo-header), both directions: elect, fail over on a link
// cut, hand back when the link returns. The adverts of both carry the pseudo-header form.
func TestV3MulticastIPv4(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 51, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}
	for _, d := range directions {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newPair(t, g, d)
			c := startCapture(t, p.backup) // it hears the MASTER, and sends when it takes over
			p.start()
			p.failover(linkCut)
			p.handback(linkCut)
			p.checkWire(c.stop(t), map[*lab.Node]string{p.ka: "pseudo-header", p.kv: "pseudo-header"})
		})
	}
	// spec.checksumMode: RFC9568 sends the IPv4 checksum without the pseudo-header, as RFC
	// 9568 §5.2.8 clarifies it. keepalived 2.2.7 computes and checks only the pseudo-header
	// form: it drops every such advert ("Invalid VRRPv3 checksum"), hears nobody and becomes
	// MASTER too. kube-vrrp accepts both forms, so it hears keepalived and stays MASTER by
	// priority: the group is split, both hold the VIP. RFC9568 mode does not interoperate
	// with keepalived 2.2.7; the default (PseudoHeader) does.
	t.Run("checksum-rfc9568", func(t *testing.T) {
		t.Parallel()
		g := g
		g.ChecksumMode = "RFC9568"
		p := newPair(t, g, kubeVRRPMaster)
		c := startCapture(t, p.ka)
		p.startKeepalived()
		p.startKubeVRRP()
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 5*g.Interval+10*time.Second); err != nil {
			t.Fatalf("kube-vrrp with RFC 9568 checksums: %v", err)
		}
		time.Sleep(10 * g.Interval)
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 0); err != nil {
			t.Error(err)
		}
		if err := p.kaProc.WaitLog("Invalid VRRPv3 checksum", 0, 2*time.Second); err != nil {
			t.Errorf("keepalived: %v", err)
		}
		if strings.Contains(p.kvProc.Log(), `"reason":"bad_checksum"`) {
			t.Errorf("kube-vrrp dropped keepalived's pseudo-header checksums:\n%s", p.kvProc.Tail(10))
		}
		p.expectState(p.ka, true)
		p.expectState(p.kv, true)
		p.checkWire(c.stop(t), map[*lab.Node]string{p.ka: "pseudo-header", p.kv: "rfc9568"})
	})
}

// TestV3Unicast runs VRRPv3 with unicast peers (keepalived unicast_src_ip/unicast_peer,
// kube-vrrp spec.unicast.peers) at 100 ms, both directions: elect, fail over on SIGTERM
// (priority 0) and hand back by restarting, then fail over on a link cut and hand back when
// the link returns (last, because that hand back may leave the client behind; see handback).
func TestV3Unicast(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 53, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}, Unicast: true}
	for _, d := range directions {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newPair(t, g, d)
			c := startCapture(t, p.backup) // it hears the MASTER, and sends when it takes over
			p.start()

			kvEvents, kaLog := len(lab.KubeVRRPEvents(p.kvProc)), p.kaProc.LogSize()
			p.failover(sigterm)
			if p.backup == p.kv {
				// With one peer, kube-vrrp knows it is the only router left when keepalived
				// resigns, and takes over without waiting Skew_Time.
				if _, err := lab.WaitKubeVRRPEvent(p.kvProc, kvEvents, time.Second, lab.Entered("Master", "FastHandover")); err != nil {
					t.Errorf("kube-vrrp did not take over at once on keepalived's priority 0: %v", err)
				}
			} else if err := p.kaProc.WaitLog("Backup received priority 0 advertisement", kaLog, time.Second); err != nil {
				t.Errorf("keepalived did not see kube-vrrp's priority 0: %v", err)
			}
			p.handback(sigterm)
			p.checkWire(c.stop(t), map[*lab.Node]string{p.ka: "pseudo-header", p.kv: "pseudo-header"})

			p.failover(linkCut)
			p.handback(linkCut)
		})
	}
}

// TestGracefulHandover stops the MASTER with SIGTERM over VRRPv3 multicast at 100 ms, both
// directions. The stopping speaker sends priority 0 (RFC 5798 §6.4.3 Shutdown); the other
// must then take over after Skew_Time (RFC 5798 §6.4.2), not after Master_Down_Interval. A
// capture on the BACKUP's node shows when the priority-0 advert arrived and when the BACKUP
// sent its first advert as MASTER: a BACKUP that ignored priority 0 could not advertise
// before Master_Down_Interval - Advertisement_Interval after it (the MASTER's last regular
// advert was at most one interval earlier). Then the stopped speaker is started again and
// preempts.
func TestGracefulHandover(t *testing.T) {
	privtest.Require(t)
	g := group{VRID: 54, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}}
	for _, d := range directions {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newPair(t, g, d)
			p.start()
			c := startCapture(t, p.backup)
			kaLog := p.kaProc.LogSize()
			out := p.failover(sigterm)
			frames := c.stop(t)

			zero, ok := firstPriorityZero(frames, p.addr(p.master))
			if !ok {
				t.Fatalf("no priority-0 advert from %s on SIGTERM:\n%s", p.speaker(p.master), dumpFrames(frames))
			}
			first, ok := firstAdvertAfter(frames, p.addr(p.backup), zero.At)
			if !ok {
				t.Fatalf("no advert from %s after the priority 0:\n%s", p.speaker(p.backup), dumpFrames(frames))
			}
			skew := time.Duration(256-backupPriority) * g.Interval / 256
			masterDown := 3*g.Interval + skew
			took := first.At.Sub(zero.At)
			t.Logf("SIGTERM of %s MASTER: %s advertised as MASTER %v after the priority 0 (Skew_Time %v, Master_Down_Interval %v); client outage %v (%d probes lost)",
				p.speaker(p.master), p.speaker(p.backup), took.Round(time.Millisecond), skew.Round(time.Millisecond), masterDown.Round(time.Millisecond),
				out.Duration.Round(time.Millisecond), out.Lost)
			if took >= masterDown-g.Interval {
				t.Errorf("%s took over %v after the priority 0, not sooner than Master_Down_Interval would have: priority 0 not honoured",
					p.speaker(p.backup), took)
			}
			if p.backup == p.ka {
				if err := p.kaProc.WaitLog("Backup received priority 0 advertisement", kaLog, time.Second); err != nil {
					t.Error(err)
				}
			} else if err := p.kaProc.WaitLog("sent 0 priority", kaLog, time.Second); err != nil {
				t.Error(err)
			}
			p.handback(sigterm)
		})
	}
}

// TestV3MulticastIPv6 runs VRRPv3 over IPv6 multicast at 100 ms, both directions: elect,
// fail over on a link cut, hand back when the link returns.
//
// RFC 5798 §5.2.9: the first address of an IPv6 advert is the virtual router's link-local
// address. kube-vrrp puts the one derived from the virtual MAC (fe80::200:5eff:fe00:2XX, XX
// the VRID) first when none is configured, and drops adverts whose first address is not
// link-local. keepalived 2.2.7 sends its virtual_ipaddress list as configured and drops an
// advert whose address count differs from its own list. So keepalived interoperates when its
// list starts with that link-local address, as here; with global addresses only (the
// "global-only" case) neither accepts the other and both become MASTER.
func TestV3MulticastIPv6(t *testing.T) {
	privtest.Require(t)
	ll := netip.PrefixFrom(vrrpLinkLocal(60), 64)
	g := group{VRID: 60, Version: 3, Interval: 100 * time.Millisecond, VIPs: []netip.Prefix{vip6},
		KeepalivedVIPs: []netip.Prefix{ll, vip6}}
	for _, d := range directions {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			p := newPair(t, g, d)
			c := startCapture(t, p.backup) // it hears the MASTER, and sends when it takes over
			p.start()
			p.failover(linkCut)
			p.handback(linkCut)
			p.checkWire(c.stop(t), map[*lab.Node]string{p.ka: "ipv6", p.kv: "ipv6"})
		})
	}
	t.Run("global-only", func(t *testing.T) {
		t.Parallel()
		g := g
		g.KeepalivedVIPs = nil
		p := newPair(t, g, kubeVRRPMaster)
		c := startCapture(t, p.ka)
		p.startKeepalived()
		p.startKubeVRRP()
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 5*g.Interval+10*time.Second); err != nil {
			t.Fatalf("keepalived with a global-only IPv6 virtual_ipaddress: %v", err)
		}
		time.Sleep(10 * g.Interval)
		if err := lab.WaitHolders(p.nodes(), g.vip(), p.nodes(), 0); err != nil {
			t.Error(err)
		}
		if _, err := lab.WaitKubeVRRPEvent(p.kvProc, 0, 2*time.Second, lab.Dropped("ipv6_first_not_link_local")); err != nil {
			t.Errorf("kube-vrrp: %v", err)
		}
		if err := p.kaProc.WaitLog("received an unexpected ip number count 2, expected 1!", 0, 2*time.Second); err != nil {
			t.Errorf("keepalived: %v", err)
		}
		p.expectState(p.ka, true)
		p.expectState(p.kv, true)
		p.checkWire(c.stop(t), map[*lab.Node]string{p.ka: "ipv6", p.kv: "ipv6"})
	})
}
