package lab_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
	"github.com/kube-vrrp/kube-vrrp/internal/privtest"
)

// UseVMAC renders use_vmac and the VIPs without a device, so that keepalived puts them on its
// vmac interface; keepalived accepts it.
func TestKeepalivedConfUseVMAC(t *testing.T) {
	cfg := lab.KeepalivedConf("n1", lab.VRRPInstance{VRID: 51, AdvertInt: 100 * time.Millisecond, VIPs: []netip.Prefix{vip4}, UseVMAC: true})
	want := `vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    version 3
    virtual_router_id 51
    priority 100
    advert_int 0.1
    virtual_ipaddress {
        198.18.0.200/24
    }
    use_vmac
}
`
	if !strings.HasSuffix(cfg, want) {
		t.Errorf("config mismatch:\n%s", diffLines(want, cfg[strings.Index(cfg, "vrrp_instance"):]))
	}
	privtest.Require(t)
	l := lab.New(t, lab.Options{Nodes: 1, ResponderPort: -1})
	path := l.Node(1).MustWriteFile("vmac.conf", []byte(cfg))
	if out, err := l.Node(1).Run("keepalived", "--config-test", "-f", path); err != nil {
		t.Errorf("%v\n%s\n%s", err, out, cfg)
	}
}
