package desired

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
)

// SlotFor resolves the interface as For does, without peers or password.
func TestSlotFor(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*v1alpha1.VirtualIP)
		want    Slot
		wantErr string
	}{
		{name: "by subnet", want: Slot{Interface: "eth0", VRID: 51}},
		{name: "IPv6", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Addresses = []string{"2001:db8::100/64"} },
			want: Slot{Interface: "eth0", VRID: 51, IPv6: true}},
		{name: "spec.interface", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth1" }, want: Slot{Interface: "eth1", VRID: 51}},
		{name: "nodes[].interface", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Nodes[0].Interface = "eth1" }, want: Slot{Interface: "eth1", VRID: 51}},
		{name: "PASS without its password, unicast without peers: the slot is known all the same", mut: func(v *v1alpha1.VirtualIP) {
			v.Spec.Version = 2
			v.Spec.AdvertisementInterval = nil
			v.Spec.Authentication = &v1alpha1.AuthenticationSpec{Type: "PASS", SecretRef: v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
			v.Spec.Unicast = &v1alpha1.UnicastSpec{FromNodes: ptr.To(false)}
		}, want: Slot{Interface: "eth0", VRID: 51}},
		{name: "no interface", mut: func(v *v1alpha1.VirtualIP) { v.Spec.Interface = "eth9" }, wantErr: `interface "eth9" (spec.interface) does not exist`},
		{name: "invalid", mut: func(v *v1alpha1.VirtualIP) { v.Spec.VRID = 0 }, wantErr: `VirtualIP "haproxy" is invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validVIP()
			if tt.mut != nil {
				tt.mut(v)
			}
			got, err := SlotFor(v, testNode())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SlotFor = %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SlotFor = %v, want %v", got, tt.want)
			}
			// For agrees wherever it can build the Config.
			if tt.mut == nil {
				cfg, err := For(v, testNode(), nil, nil)
				if err != nil || SlotOf(cfg) != got {
					t.Errorf("For's slot %v (%v), SlotFor's %v", SlotOf(cfg), err, got)
				}
			}
		})
	}
	if s := (Slot{Interface: "eth0", VRID: 51, IPv6: true}).String(); s != "VRID 51 on eth0 (IPv6)" {
		t.Errorf("String() = %q", s)
	}
}

func TestAddresses(t *testing.T) {
	v := validVIP()
	v.Spec.Addresses = []string{"192.0.2.100/24", "192.0.2.101", "not-an-address", "192.0.2.100/32"}
	if d := cmp.Diff(addrs("192.0.2.100", "192.0.2.101"), Addresses(v), netipCmp); d != "" {
		t.Errorf("Addresses (-want +got):\n%s", d)
	}
}

// A virtual address that is on the interface without having been added by kube-vrrp is
// refused, except for the address owner.
func TestCheckForeign(t *testing.T) {
	cfg := baseConfig() // 192.0.2.100/24 on eth0, priority 110
	if err := CheckForeign(cfg, pfxs("192.0.2.11/24", "fe80::11/64")); err != nil {
		t.Errorf("no virtual address is foreign: %v", err)
	}
	err := CheckForeign(cfg, pfxs("192.0.2.11/24", "192.0.2.100/32"))
	want := `VirtualIP "haproxy": address 192.0.2.100 is already on eth0 and kube-vrrp did not add it (an address of this host, or another program's)`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("CheckForeign = %v, want %q...", err, want)
	}
	cfg.Priority = OwnerPriority
	if err := CheckForeign(cfg, pfxs("192.0.2.100/24")); err != nil {
		t.Errorf("the owner's own address: %v", err)
	}
}
