package controllers

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// writersOf, which looks only at the candidates' Nodes, names the same writer and stand-by as
// writers over the live members, whatever the states, transition times and stale members; and
// with one MASTER among 500 live members it looks at two Nodes, not 500.
func TestWritersOfAgreesWithWriters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	states := []string{vrrp.Master.String(), vrrp.Backup.String(), vrrp.Fault.String()}
	for i := range 2000 {
		n := 1 + rng.IntN(8)
		var members []*v1alpha1.VirtualIPMember
		var live []v1alpha1.NodeStatus
		gone := map[string]bool{}
		for j := range n {
			m := &v1alpha1.VirtualIPMember{Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: "v", Node: fmt.Sprintf("n%d", rng.IntN(20)*100+j)}}
			m.Status.State = states[rng.IntN(len(states))]
			if rng.IntN(4) > 0 {
				m.Status.LastTransitionTime = &metav1.Time{Time: base.Add(time.Duration(rng.IntN(3)) * time.Second)}
			}
			members = append(members, m)
			if rng.IntN(4) == 0 {
				gone[m.Spec.Node] = true
			} else {
				live = append(live, m.Entry())
			}
		}
		wantW, wantS := writers(live)
		gotW, gotS, err := writersOf(members, func(node string) (bool, error) { return gone[node], nil })
		if err != nil || gotW != wantW || gotS != wantS {
			t.Fatalf("case %d: writersOf = %q, %q, %v; writers(live) = %q, %q", i, gotW, gotS, err, wantW, wantS)
		}
	}

	var members []*v1alpha1.VirtualIPMember
	for j := range 500 {
		m := &v1alpha1.VirtualIPMember{Spec: v1alpha1.VirtualIPMemberSpec{VirtualIP: "v", Node: fmt.Sprintf("n%03d", j)}}
		m.Status.State = vrrp.Backup.String()
		if j == 250 {
			m.Status.State = vrrp.Master.String()
		}
		members = append(members, m)
	}
	looked := 0
	w, s, _ := writersOf(members, func(string) (bool, error) { looked++; return false, nil })
	if w != "n250" || s != "n000" || looked != 2 {
		t.Errorf("500 members, n250 MASTER: writer %q, stand-by %q, %d Nodes looked at; want n250, n000, 2", w, s, looked)
	}
}
