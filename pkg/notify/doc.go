// Package notify runs a VirtualIP's spec.notify commands on this node's state changes, as
// keepalived's notify_master, notify_backup, notify_fault, notify_stop and notify do
// (docs/design.md §6.6). It is a consumer of the agent's event stream (§3.3): a Runner maps
// each transition to MASTER, BACKUP, FAULT or STOP and runs the state's own command, then
// all, with keepalived's arguments appended (INSTANCE, the VirtualIP's name, the state, the
// effective priority) and the engine's reason as a fifth.
//
// A command runs directly (no shell, no PATH lookup: its first element is an absolute path),
// with an empty environment, in /, with standard input, output and error on /dev/null, in a
// process group of its own (on Unix), so that its timeout kills it with every process it
// started. Its output is discarded, not read: a daemon it starts in the background must not
// inherit a pipe to the agent, which would either keep the agent waiting or, once closed,
// kill the daemon with SIGPIPE. The log says which program ran, for which change, how long it
// took and how it ended; never its arguments, which may carry credentials, nor its
// environment.
//
// Each VirtualIP has its own worker: its changes run one at a time, in the order they
// happened, and a slow or hung command of one VirtualIP never delays another's. A worker's
// queue is bounded (QueueLength changes): when its commands are slower than its changes, the
// oldest change waiting is dropped, counted (Runner.Dropped) and logged, so that the newest
// state, which is what a script acts on, always runs. VRRP never waits for a command: the
// stream hands events over without blocking, and nothing here feeds back into the engine.
package notify
