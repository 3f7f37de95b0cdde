package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// The errors the delegating authenticator returns, as the union of its authenticators
// aggregates them; test/envtest's TestMetricsAuth and TestMetricsReviewFailed see the real ones.
func TestReviewFailed(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "https://198.18.0.1:6443/apis/authentication.k8s.io/v1/tokenreviews", Err: syscall.ECONNREFUSED}
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("no RBAC"))
	for _, tc := range []struct {
		what   string
		err    error
		failed bool
	}{
		{"rejected by the API server", utilerrors.NewAggregate([]error{errors.New("[invalid bearer token, square/go-jose: compact JWS format must have three parts]")}), false},
		{"rejected, no reason given", utilerrors.NewAggregate([]error{errors.New("invalid bearer token")}), false},
		{"API server unreachable", utilerrors.NewAggregate([]error{refused}), true},
		{"TokenReview forbidden", utilerrors.NewAggregate([]error{forbidden}), true},
		{"API server overloaded", utilerrors.NewAggregate([]error{apierrors.NewTooManyRequests("slow down", 1)}), true},
		{"review timed out", utilerrors.NewAggregate([]error{fmt.Errorf("review: %w", context.DeadlineExceeded)}), true},
		{"one rejected, one failed", utilerrors.NewAggregate([]error{errors.New("invalid bearer token"), refused}), true},
		{"not aggregated", forbidden, true},
	} {
		if got := reviewFailed(tc.err); got != tc.failed {
			t.Errorf("%s: reviewFailed(%v) = %v, want %v", tc.what, tc.err, got, tc.failed)
		}
	}
}

func TestLogBudget(t *testing.T) {
	b := &logBudget{every: time.Second}
	t0 := time.Unix(1000, 0)
	for i, step := range []struct {
		at   time.Duration
		ok   bool
		held int
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	} {
		ok, held := b.take(t0.Add(step.at))
		if ok != step.ok || held != step.held {
			t.Errorf("step %d at +%s: take = %v, %d; want %v, %d", i, step.at, ok, held, step.ok, step.held)
		}
	}
}
