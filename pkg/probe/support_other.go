//go:build !linux

package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
)

// Outside Linux (an operator's laptop running validate or convert) only the tcp, http and file
// probes can run. Process probes read /proc and hold pidfds, exec probes kill their process
// group, and interface probes read the link over netlink: New refuses them, and the checkers
// below only keep the package building. Spec.Validate is the same everywhere, so a manifest
// with such probes still validates.

// supported reports whether probes of kind k can run here.
func supported(k Kind) error {
	switch k {
	case KindProcess, KindExec, KindInterface:
		return fmt.Errorf("%s probes need Linux, not %s: %w", k, runtime.GOOS, errors.ErrUnsupported)
	}
	return nil
}

// unsupportedReason is why a Linux-only checker fails; New never builds one here.
func unsupportedReason(k Kind) string { return supported(k).Error() }

type processChecker struct{}

func newProcessChecker(string, string, *slog.Logger) *processChecker { return &processChecker{} }

func (*processChecker) check(context.Context) (bool, string) {
	return false, unsupportedReason(KindProcess)
}

type execChecker struct{ argv []string }

func (execChecker) check(context.Context) (bool, string) { return false, unsupportedReason(KindExec) }

type linkChecker struct{ name string }

func (linkChecker) check(context.Context) (bool, string) {
	return false, unsupportedReason(KindInterface)
}
