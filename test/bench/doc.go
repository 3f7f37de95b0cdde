// Package bench holds the failover benchmarks of `make bench`: the outage a client sees
// (a UDP probe every 10 ms) when the MASTER's link is cut and when it is stopped with SIGTERM,
// at advert intervals of 1 s, 100 ms and 10 ms, for keepalived and kube-vrrp side by side in
// the same run and lab. They print a table; they assert nothing about timing.
package bench
