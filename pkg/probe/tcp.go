package probe

import (
	"context"
	"net"
)

// tcpChecker implements KindTCP: a connection opens within the timeout, and is closed at once.
type tcpChecker struct {
	address string
}

func (c tcpChecker) check(ctx context.Context) (bool, string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.address)
	if err != nil {
		return false, err.Error()
	}
	conn.Close()
	return true, "connected to " + c.address
}
