//go:build unix

package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/pkg/agent"
)

func TestRunHandoffTimeoutFlag(t *testing.T) {
	base := []string{"-f", "vip.yaml", "--node", "lb1"}
	o, err := parseRunFlags(base, io.Discard)
	if err != nil || o.handoffTimeout != 10*time.Second {
		t.Fatalf("default --handoff-timeout: %s, %v; want 10s", o.handoffTimeout, err)
	}
	if o, err := parseRunFlags(append(base, "--handoff-timeout", "20s"), io.Discard); err != nil || o.handoffTimeout != 20*time.Second {
		t.Errorf("--handoff-timeout 20s: %s, %v", o.handoffTimeout, err)
	}
	for _, bad := range []string{"999ms", "161s"} {
		if _, err := parseRunFlags(append(base, "--handoff-timeout", bad), io.Discard); err == nil {
			t.Errorf("--handoff-timeout %s accepted", bad)
		}
	}
}

// Handed-over addresses do not count as foreign on their interface until their deadline (on a
// kernel without marks they look like someone else's until adopted).
func TestWithoutHandedOver(t *testing.T) {
	pfx := netip.MustParsePrefix
	host := []netip.Prefix{pfx("198.18.0.1/24"), pfx("198.18.0.100/32"), pfx("198.18.0.101/32")}
	foreign := func(string) ([]netip.Prefix, error) { return slices.Clone(host), nil }
	now := time.Now()
	f := withoutHandedOver(foreign, []agent.HandoffEntry{
		{Interface: "eth0", VRID: 1, Addresses: []netip.Prefix{pfx("198.18.0.100/32")}, Deadline: now.Add(time.Minute)},
		{Interface: "eth0", VRID: 2, Addresses: []netip.Prefix{pfx("198.18.0.101/32")}, Deadline: now.Add(-time.Second)},
	})
	got, err := f("eth0")
	if want := []netip.Prefix{pfx("198.18.0.1/24"), pfx("198.18.0.101/32")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("eth0: %v, %v; want %v", got, err, want)
	}
	if got, _ := f("eth1"); !slices.Equal(got, host) {
		t.Errorf("eth1: %v, want all of %v", got, host)
	}
}

// notifyStop tells which signal stopped the process before the context ends.
func TestNotifyStop(t *testing.T) {
	got := make(chan os.Signal, 1)
	ctx, stop := notifyStop(context.Background(), func(s os.Signal) { got <- s }, syscall.SIGUSR2)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled by SIGUSR2")
	}
	if s := <-got; s != syscall.SIGUSR2 {
		t.Errorf("onSignal got %v, want SIGUSR2", s)
	}
}
