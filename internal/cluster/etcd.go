package cluster

import (
	"context"
	"errors"
)

// StopEtcd stops etcd as in an outage of the datastore while kube-apiserver keeps running:
// SIGTERM, then SIGKILL if it has not exited after 5 s. It returns when the process is gone.
// Until StartEtcd, the API server still accepts connections and keeps the watches it has open
// (served from its watch cache), but every read that needs etcd (a GET without
// resourceVersion, a quorum list) and every write fails or times out, and /readyz fails.
func (c *ControlPlane) StopEtcd() error {
	p := c.Etcd()
	if p == nil {
		return errors.New("etcd was never started")
	}
	_ = p.Stop() // its exit status says how it ended, which does not matter here
	return nil
}

// StartEtcd starts etcd again on its data directory after StopEtcd and returns when it is
// healthy. kube-apiserver reconnects by itself; its /readyz may lag behind by a moment.
func (c *ControlPlane) StartEtcd(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("control plane closed")
	}
	if c.etcd != nil && !c.etcd.Exited() {
		c.mu.Unlock()
		return errors.New("etcd is running")
	}
	c.mu.Unlock()
	// The data directory holds the member: the --initial-cluster flags are ignored on a restart.
	return c.startEtcd(ctx)
}
