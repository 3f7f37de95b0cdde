package keepalived

import (
	"fmt"
	"strings"
	"time"

	v1alpha1 "github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// vmac converts use_vmac to virtualMAC. kube-vrrp creates, names and removes the macvlan
// itself, always with the RFC 5798 §7.3 address, and sends the adverts and announcements from
// it: a name or a MAC address given to use_vmac is reported, not kept.
func (c *converter) vmac(d *draft, where string) {
	v := d.inst.VMAC
	if v == nil {
		return
	}
	d.spec.VirtualMAC = true
	if v.Name != "" {
		c.warnf(v.Pos, "%s: use_vmac %s: kube-vrrp names and manages its own macvlan for the VirtualIP (virtualMAC: true) and always sends its adverts and announcements from it; the name %s is not used", where, v.Name, v.Name)
	}
	if v.MAC != "" {
		c.warnf(v.Pos, "%s: use_vmac MAC address %s: kube-vrrp always uses the RFC 5798 virtual router MAC, %s for this group; %s is not used", where, v.MAC, rfcVMAC(d.family, d.spec.VRID), v.MAC)
	}
}

// rfcVMAC is the virtual router MAC address of RFC 5798 §7.3.
func rfcVMAC(family int, vrid int32) string {
	proto := 1
	if family == 6 {
		proto = 2
	}
	return fmt.Sprintf("00:00:5e:00:%02x:%02x", proto, vrid)
}

// announcements converts keepalived's gratuitous ARP / NA timing: garp_master_repeat is the
// count of each burst, garp_master_delay the delay of the second burst (0: none),
// garp_master_refresh and garp_master_refresh_repeat the refresh while MASTER. An instance's
// own keyword wins over global_defs' vrrp_garp_master_* (which apply wherever they stand in
// the file, as in keepalived), and keepalived's defaults (5 messages, a second burst 5s later,
// no refresh) are written out, since kube-vrrp's are 2 and 2s. What is beyond kube-vrrp's
// bounds is clamped, with a warning.
func (c *converter) announcements(d *draft, where string) {
	own, global := &d.inst.Garp, &c.cfg.Global.Garp
	pick := func(own, global GarpValue, def int) GarpValue {
		switch {
		case own.Set:
			return own
		case global.Set:
			return global
		}
		return GarpValue{Value: def}
	}
	// what names the keyword that set v, as a warning starts: a global value is named the
	// same way for every instance, so its warning is printed once.
	what := func(v GarpValue) string {
		if strings.HasPrefix(v.Keyword, "vrrp_") {
			return "global_defs " + v.Keyword
		}
		return where + ": " + v.Keyword
	}
	delay := pick(own.Delay, global.Delay, defaultGarpDelay)
	repeat := pick(own.Repeat, global.Repeat, defaultGarpRepeat)
	refresh := pick(own.Refresh, global.Refresh, defaultGarpRefresh)
	refreshRepeat := pick(own.RefreshRepeat, global.RefreshRepeat, defaultGarpRefreshRepeat)

	a := &v1alpha1.AnnouncementSpec{}
	a.Count = ptr(int32(c.announceCount(repeat, what(repeat), "in each burst")))
	rd := time.Duration(delay.Value) * time.Second
	if rd > v1alpha1.MaxAnnounceRepeatDelay {
		c.warnf(delay.Pos, "%s %d: kube-vrrp sends the second burst at most %s after a takeover; %s is used", what(delay), delay.Value, v1alpha1.MaxAnnounceRepeatDelay, v1alpha1.MaxAnnounceRepeatDelay)
		rd = v1alpha1.MaxAnnounceRepeatDelay
	}
	a.RepeatDelay = &v1alpha1.Duration{Duration: rd}

	switch {
	case refresh.Value > 0 && refreshRepeat.Value == 0 && refreshRepeat.Keyword == "vrrp_min_garp":
		// keepalived turns a written 0 into 1, but vrrp_min_garp sets 0 itself.
		c.warnf(refresh.Pos, "%s %d: %s set the messages per refresh to 0, so keepalived sends nothing at a refresh; no refresh is converted (set garp_master_refresh_repeat to refresh)", what(refresh), refresh.Value, what(refreshRepeat))
	case refresh.Value > 0:
		ri := time.Duration(refresh.Value) * time.Second
		if ri > v1alpha1.MaxAnnounceRefresh {
			c.warnf(refresh.Pos, "%s %d: kube-vrrp refreshes at least every %s; %s is used", what(refresh), refresh.Value, v1alpha1.MaxAnnounceRefresh, v1alpha1.MaxAnnounceRefresh)
			ri = v1alpha1.MaxAnnounceRefresh
		}
		a.RefreshInterval = &v1alpha1.Duration{Duration: ri}
		a.RefreshCount = ptr(int32(c.announceCount(refreshRepeat, what(refreshRepeat), "at each refresh")))
	case refreshRepeat.Set && refreshRepeat.Keyword != "vrrp_min_garp":
		c.warnf(refreshRepeat.Pos, "%s: %s has no effect without garp_master_refresh, in keepalived too; not converted", where, refreshRepeat.Keyword)
	}
	d.spec.Announcements = a
}

// announceCount maps a number of messages per address to kube-vrrp's 1..16.
func (c *converter) announceCount(v GarpValue, what, when string) int {
	switch {
	case v.Value == 0:
		c.warnf(v.Pos, "%s 0: keepalived sends 1 message per address %s (and reports an error), and so does the conversion", what, when)
		return 1
	case v.Value > v1alpha1.MaxAnnounceCount:
		c.warnf(v.Pos, "%s %d: kube-vrrp sends at most %d messages per address %s; %d is used", what, v.Value, v1alpha1.MaxAnnounceCount, when, v1alpha1.MaxAnnounceCount)
		return v1alpha1.MaxAnnounceCount
	}
	return v.Value
}
