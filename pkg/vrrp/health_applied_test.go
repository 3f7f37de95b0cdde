package vrrp_test

import (
	"testing"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// The status says where the probes' weights do not apply as they are: the address owner keeps
// 255 whatever they say, and the sum is clamped to 1..254 (RFC 5798 §5.2.4). Without it the
// message would claim "-20" next to a priority that did not move.
func TestStatusSaysWhereWeightsDoNotApply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		priority uint8 // configured
		adjust   int
		msg      string // the probes'
		want     string
	}{
		{"owner", 255, -20, "probe w (-20)", "probe w (-20), address owner: weights ignored"},
		{"clamped low", 100, -150, "probe w (-150)", "probe w (-150), clamped to 1"},
		{"clamped high", 240, 20, "probe w (+20)", "probe w (+20), clamped to 254"},
		{"as they are", 100, 20, "probe w (+20)", "probe w (+20)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := with(config4(), func(c *vrrp.Config) { c.Priority = tc.priority })
			in, _ := startMaster(t, cfg)
			in.SetHealth(t0, vrrp.Health{Adjust: tc.adjust, Reason: vrrp.ReasonProbeRecovered, Message: tc.msg})
			if got := in.Status().Health.Message; got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
}
