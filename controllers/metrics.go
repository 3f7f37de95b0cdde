package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

// Collector exposes the agent's instances as Prometheus metrics, read from a snapshot at
// scrape time: no counter is kept twice.
type Collector struct {
	Agent Agent
	Node  string
}

var (
	descState = prometheus.NewDesc("kube_vrrp_state",
		"1 for the VRRP state each VirtualIP instance on this node is in, 0 for the others.",
		[]string{"vip", "node", "state"}, nil)
	descPriority = prometheus.NewDesc("kube_vrrp_priority",
		"Effective VRRP priority of the instance (after probe weights).", []string{"vip", "node"}, nil)
	descTransitions = prometheus.NewDesc("kube_vrrp_transitions_total",
		"State transitions of the instance.", []string{"vip", "node"}, nil)
	descSent = prometheus.NewDesc("kube_vrrp_adverts_sent_total",
		"VRRP advertisements sent.", []string{"vip", "node"}, nil)
	descReceived = prometheus.NewDesc("kube_vrrp_adverts_received_total",
		"Valid VRRP advertisements received.", []string{"vip", "node"}, nil)
	descDrops = prometheus.NewDesc("kube_vrrp_packets_dropped_total",
		"Received VRRP packets dropped, by reason (bad_ttl, bad_checksum, auth_failed, ...).",
		[]string{"vip", "node", "reason"}, nil)
	descProbe = prometheus.NewDesc("kube_vrrp_probe_healthy",
		"1 while the probe is healthy, 0 while failing; absent until its first check.",
		[]string{"vip", "node", "probe"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descPriority, descTransitions, descSent, descReceived, descDrops, descProbe} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	states := []vrrp.State{vrrp.Initialize, vrrp.Backup, vrrp.Master, vrrp.Fault}
	for _, st := range c.Agent.Snapshot() {
		for _, s := range states {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Name, c.Node, s.String())
		}
		ch <- prometheus.MustNewConstMetric(descPriority, prometheus.GaugeValue, float64(st.Priority), st.Name, c.Node)
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(st.Stats.Transitions), st.Name, c.Node)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(st.Stats.AdvertsSent), st.Name, c.Node)
		ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(st.Stats.AdvertsReceived), st.Name, c.Node)
		for reason, n := range st.Stats.Drops {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), st.Name, c.Node, string(reason))
		}
		for _, p := range st.Probes {
			if !p.Known {
				continue
			}
			v := 0.0
			if p.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descProbe, prometheus.GaugeValue, v, st.Name, c.Node, p.Name)
		}
	}
}
