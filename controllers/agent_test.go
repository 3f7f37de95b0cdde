package controllers

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "short", in: "abc", n: 10, want: "abc"},
		{name: "exactly n", in: "abcdefghij", n: 10, want: "abcdefghij"},
		{name: "empty", in: "", n: 10, want: ""},
		{name: "ascii", in: "abcdefghijk", n: 10, want: "abcdefg..."},
		{name: "trailing space before the cut", in: "abcde   fghijk", n: 10, want: "abcde..."},
		// "é" is c3 a9: a cut between the two bytes drops the whole rune.
		{name: "two-byte rune cut", in: "abcdeféghij", n: 10, want: "abcdef..."},
		// "€" is e2 82 ac.
		{name: "three-byte rune cut after the first byte", in: "abcdef€ghij", n: 10, want: "abcdef..."},
		{name: "three-byte rune cut after the second byte", in: "abcde€ghij", n: 10, want: "abcde..."},
		// "😀" is f0 9f 98 80.
		{name: "four-byte rune cut", in: "abcd😀fghij", n: 10, want: "abcd..."},
		{name: "all multi-byte", in: strings.Repeat("ü", 20), n: 10, want: "üüü..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

// Every cut of every mix of rune widths is valid UTF-8, at most n bytes (so at most n
// characters, the CRD's unit), and keeps a prefix of the input.
func TestTruncateUTF8(t *testing.T) {
	pieces := []string{"a", " ", "é", "€", "😀", "ü "}
	for _, n := range []int{4, 5, 6, 7, 8, 9, 10, 16, 33, maxMessage} {
		for start := range pieces {
			var b strings.Builder
			for i := 0; b.Len() < 3*n+10; i++ {
				b.WriteString(pieces[(start+i*(i+1)/2)%len(pieces)])
			}
			in := b.String()
			got := truncate(in, n)
			if !utf8.ValidString(got) {
				t.Errorf("truncate(%q, %d) = %q: invalid UTF-8", in, n, got)
			}
			if len(got) > n {
				t.Errorf("truncate(%q, %d) has %d bytes", in, n, len(got))
			}
			if !strings.HasSuffix(got, "...") || !strings.HasPrefix(in, strings.TrimSuffix(got, "...")) {
				t.Errorf("truncate(%q, %d) = %q: not a prefix followed by ...", in, n, got)
			}
		}
	}
}

func TestRejections(t *testing.T) {
	var mu sync.Mutex
	var notified []string
	r := NewRejections(func(name string) {
		mu.Lock()
		defer mu.Unlock()
		notified = append(notified, name)
	})
	takeNotified := func() []string {
		mu.Lock()
		defer mu.Unlock()
		n := notified
		notified = nil
		return n
	}

	if _, ok := r.Get("a"); ok {
		t.Fatal("Get of an unknown name: ok")
	}
	r.Set("a", Rejection{Reason: ReasonSecretMissing, Message: "x"})
	r.Set("a", Rejection{Reason: ReasonSecretMissing, Message: "x"}) // unchanged: no notification
	r.Set("b", Rejection{Reason: ReasonInvalidSpec, Message: "y"})
	r.Set("a", Rejection{Reason: ReasonSecretMissing, Message: "z"}) // another message
	r.Set("a", Rejection{Reason: ReasonCannotResolve, Message: "z"}) // another reason
	if d := cmp.Diff([]string{"a", "b", "a", "a"}, takeNotified()); d != "" {
		t.Errorf("notifications (-want +got):\n%s", d)
	}
	if got, ok := r.Get("a"); !ok || got != (Rejection{Reason: ReasonCannotResolve, Message: "z"}) {
		t.Errorf("Get(a) = %+v, %v", got, ok)
	}
	names := r.Names()
	slices.Sort(names)
	if d := cmp.Diff([]string{"a", "b"}, names); d != "" {
		t.Errorf("Names (-want +got):\n%s", d)
	}

	r.Clear("a")
	r.Clear("a")       // already gone: no notification
	r.Clear("unknown") // never set: no notification
	if d := cmp.Diff([]string{"a"}, takeNotified()); d != "" {
		t.Errorf("notifications after Clear (-want +got):\n%s", d)
	}
	if _, ok := r.Get("a"); ok {
		t.Error("Get(a) after Clear: ok")
	}
	if d := cmp.Diff([]string{"b"}, r.Names()); d != "" {
		t.Errorf("Names after Clear (-want +got):\n%s", d)
	}

	// The message is bounded like a member's status.message; the reason stays whole.
	long := "spec: " + strings.Repeat("é", 2*maxMessage)
	r.Set("c", Rejection{Reason: ReasonInvalidSpec, Message: long})
	got, _ := r.Get("c")
	if m := got.Message; len(m) > maxMessage || !utf8.ValidString(m) || !strings.HasPrefix(m, "spec: é") || got.Reason != ReasonInvalidSpec {
		t.Errorf("long message stored as %d bytes (valid UTF-8: %v) with reason %q, want <= %d bytes starting with the message and reason %s",
			len(m), utf8.ValidString(m), got.Reason, maxMessage, ReasonInvalidSpec)
	}

	// A nil notify is allowed.
	q := NewRejections(nil)
	q.Set("a", Rejection{Reason: ReasonInvalidSpec, Message: "x"})
	q.Clear("a")
}

// Rejections is used from the reconcilers' goroutines and the status feed at once.
func TestRejectionsConcurrent(t *testing.T) {
	r := NewRejections(func(string) {})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				name := string(rune('a' + (i+j)%5))
				r.Set(name, Rejection{Reason: ReasonInvalidSpec, Message: "x"})
				r.Get(name)
				r.Names()
				r.Clear(name)
			}
		})
	}
	wg.Wait()
}
