package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// fatNodeList is a list of n fat Nodes as the API server sends it, with a resourceVersion and
// a continue token.
func fatNodeList(n int) *corev1.NodeList {
	list := &corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: "81234", Continue: "next-page"}}
	for i := range n {
		node := fatNode(fmt.Sprintf("node-%04d", i))
		node.TypeMeta = metav1.TypeMeta{}
		node.Status.Addresses[0].Address = fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250)
		list.Items = append(list.Items, *node)
	}
	return list
}

// trimmedList is what the cache keeps of list: each Node as TrimNode leaves it.
func trimmedList(list *corev1.NodeList) *trimmedNodeList {
	out := &trimmedNodeList{TypeMeta: list.TypeMeta, ListMeta: list.ListMeta, Items: []*corev1.Node{}}
	for i := range list.Items {
		t, _ := TrimNode(list.Items[i].DeepCopy())
		out.Items = append(out.Items, t.(*corev1.Node))
	}
	return out
}

func encodeProtobuf(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	ser := protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)
	var b bytes.Buffer
	if err := clientgoscheme.Codecs.EncoderForVersion(ser, corev1.SchemeGroupVersion).Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A list of Nodes in protobuf, as the API server sends it, and in JSON, decodes to the Nodes
// TrimNode keeps, with the list's resourceVersion and continue token.
func TestDecodeTrimmedNodes(t *testing.T) {
	list := fatNodeList(30)
	want := trimmedList(list)
	pb := encodeProtobuf(t, list)
	js, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"protobuf": pb, "JSON": js} {
		got, err := decodeTrimmedNodes(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
		// The informer takes the items as they are (no copy out of an array), and the
		// transform returns them as they are.
		items, err := meta.ExtractListWithAlloc(got)
		if err != nil || len(items) != len(got.Items) {
			t.Fatalf("%s: ExtractListWithAlloc: %d items, %v", name, len(items), err)
		}
		for i, obj := range items {
			if obj != runtime.Object(got.Items[i]) {
				t.Fatalf("%s: item %d copied by ExtractListWithAlloc", name, i)
			}
			if out, _ := TrimNode(obj); out != any(obj) {
				t.Fatalf("%s: item %d copied by TrimNode", name, i)
			}
		}
		if d := cmp.Diff(want, got.DeepCopyObject()); d != "" {
			t.Errorf("%s: DeepCopyObject (-want +got):\n%s", name, d)
		}
	}
	empty, err := decodeTrimmedNodes(bytes.NewReader(encodeProtobuf(t, &corev1.NodeList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}})))
	if err != nil || len(empty.Items) != 0 || empty.ResourceVersion != "7" {
		t.Errorf("an empty list: %+v, %v", empty, err)
	}
}

// A response cut short, or that is not a list of Nodes, or with a field longer than any Node,
// is an error, never a shorter list.
func TestDecodeTrimmedNodesRefuses(t *testing.T) {
	pb := encodeProtobuf(t, fatNodeList(3))
	for _, cut := range []int{5, 20, len(pb) / 2, len(pb) - 1} {
		if got, err := decodeTrimmedNodes(bytes.NewReader(pb[:cut])); err == nil {
			t.Errorf("cut at %d of %d bytes: %d Nodes, no error", cut, len(pb), len(got.Items))
		}
	}
	if _, err := decodeTrimmedNodes(bytes.NewReader(encodeProtobuf(t, &corev1.PodList{}))); err == nil ||
		!strings.Contains(err.Error(), "PodList") {
		t.Errorf("a PodList: %v", err)
	}
	// The magic, then field 2 (raw) of 1 GiB.
	huge := append([]byte("k8s\x00"), 0x12, 0x80, 0x80, 0x80, 0x80, 0x04)
	if _, err := decodeTrimmedNodes(bytes.NewReader(huge)); err == nil {
		t.Error("a list of 1 GiB announced, 0 bytes sent: no error")
	}
	// A NodeList with one item announced as 1 GiB.
	item := append([]byte("k8s\x00"), 0x12, 0x06, 0x12, 0x80, 0x80, 0x80, 0x80, 0x04)
	if _, err := decodeTrimmedNodes(bytes.NewReader(item)); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("a Node of 1 GiB: %v", err)
	}
	if _, err := decodeTrimmedNodes(strings.NewReader(`{"kind":"NodeList","items":[{`)); err == nil {
		t.Error("JSON cut short: no error")
	}
}

// listTrimmedNodes makes the request the informer asked for, in protobuf, and an error status
// comes back as the API error it is (a reflector relists on 410 Gone).
func TestListTrimmedNodes(t *testing.T) {
	list := fatNodeList(5)
	pb := encodeProtobuf(t, list)
	var query, accept string
	gone := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			http.NotFound(w, r)
			return
		}
		query, accept = r.URL.RawQuery, r.Header.Get("Accept")
		if gone {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusGone)
			_ = json.NewEncoder(w).Encode(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonExpired, Code: http.StatusGone, Message: "too old resource version"})
			return
		}
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
		_, _ = io.Copy(w, bytes.NewReader(pb))
	}))
	defer srv.Close()
	rc, err := nodeListClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := listTrimmedNodes(context.Background(), rc, metav1.ListOptions{ResourceVersion: "0", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(trimmedList(list), got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if query != "limit=500&resourceVersion=0" || !strings.HasPrefix(accept, runtime.ContentTypeProtobuf) {
		t.Errorf("request ?%s, Accept %q: want the informer's options, protobuf first", query, accept)
	}
	gone = true
	if _, err := listTrimmedNodes(context.Background(), rc, metav1.ListOptions{ResourceVersion: "5"}); !apierrors.IsResourceExpired(err) {
		t.Errorf("410 Gone: %v, want the Expired API error", err)
	}
}

// Nodes decoded apart share one copy of their label keys and values once trimmed, and the
// hostname label shares the Node's name; the table of shared strings is bounded.
func TestTrimNodeSharesLabels(t *testing.T) {
	decoded := func(name string) *corev1.Node {
		// Each string built anew, as a decoder does.
		s := func(v string) string { return string([]byte(v)) }
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s(name), Labels: map[string]string{
			s("topology.kubernetes.io/zone"): s("zone-a"), s("kubernetes.io/hostname"): s(name)}}}
	}
	a, _ := TrimNode(decoded("worker-1"))
	b, _ := TrimNode(decoded("worker-2"))
	na, nb := a.(*corev1.Node), b.(*corev1.Node)
	key := func(n *corev1.Node, k string) string {
		for kk := range n.Labels {
			if kk == k {
				return kk
			}
		}
		return ""
	}
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if k := "topology.kubernetes.io/zone"; !same(key(na, k), key(nb, k)) || !same(na.Labels[k], nb.Labels[k]) {
		t.Error("the zone label of two Nodes is not one copy")
	}
	if !same(na.Labels["kubernetes.io/hostname"], na.Name) {
		t.Error("the hostname label is not the Node's name")
	}
	if d := cmp.Diff(map[string]string{"topology.kubernetes.io/zone": "zone-a", "kubernetes.io/hostname": "worker-2"}, nb.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}

	i := &interner{max: 2, maxLen: 4}
	for _, v := range []string{"a", "b", "c", "toolong"} {
		i.intern(v)
	}
	if len(i.strings) != 2 {
		t.Errorf("the table holds %d strings, want at most 2", len(i.strings))
	}
	if c := string([]byte("c")); !same(i.intern(c), c) {
		t.Error("a string past the bound is not returned as it is")
	}
}

// nodeShapes are Nodes with what TrimNode keeps, and does not, in different shapes: no labels,
// no addresses, several of a type, ExternalIP only, an empty label value, no UID.
func nodeShapes() []*corev1.Node {
	fat := fatNode("lb1")
	bare := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}
	external := fatNode("lb2")
	external.Labels = nil
	external.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "lb2"}, {Type: corev1.NodeExternalIP, Address: "198.19.0.12"}}
	many := fatNode("lb3")
	many.UID = ""
	many.Labels["empty"] = ""
	many.Labels["same-as-name"] = "lb3"
	many.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalDNS, Address: "lb3.internal"},
		{Type: corev1.NodeInternalIP, Address: "198.18.0.13"}, {Type: corev1.NodeExternalIP, Address: "2001:db8::13"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:1::13"}, {Type: "Other", Address: "198.18.9.9"}}
	noAddrs := fatNode("lb4")
	noAddrs.Status.Addresses = nil
	return []*corev1.Node{fat, bare, external, many, noAddrs}
}

// The decoder of a Node's protobuf keeps what the generated code decodes and TrimNode keeps,
// and a Node cut short anywhere is an error, never a Node.
func TestNodeDecoder(t *testing.T) {
	var d nodeDecoder
	for _, n := range nodeShapes() {
		n.TypeMeta = metav1.TypeMeta{}
		data, err := n.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var full corev1.Node
		if err := full.Unmarshal(data); err != nil {
			t.Fatal(err)
		}
		want, _ := TrimNode(&full)
		got, err := d.trimmed(data)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-Unmarshal and TrimNode +decoder):\n%s", n.Name, d)
		}
		if again, _ := TrimNode(got); again != any(got) {
			t.Errorf("%s: TrimNode copied the decoded Node", n.Name)
		}
		for cut := 1; cut < len(data); cut++ {
			var whole corev1.Node
			if whole.Unmarshal(data[:cut]) == nil {
				continue // a cut between fields is a shorter message
			}
			if got, err := d.trimmed(data[:cut]); err == nil {
				t.Fatalf("%s cut at %d of %d bytes: %+v, no error", n.Name, cut, len(data), got)
			}
		}
	}
}

// Whatever bytes the decoder is given, it does not panic; where it and the generated code both
// decode a Node, it makes what TrimNode keeps of the generated code's; and it decodes whatever
// the generated code marshals (what the API server sends). On malformed input that the
// generated code takes anyway (a wrong wire type of a field it ignores), it may say no.
func FuzzNodeDecoder(f *testing.F) {
	for _, n := range nodeShapes() {
		data, err := n.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d nodeDecoder
		got, err := d.trimmed(data)
		var full corev1.Node
		if full.Unmarshal(data) != nil {
			return
		}
		want, _ := TrimNode(&full)
		if err == nil {
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-Unmarshal and TrimNode +decoder):\n%s", d)
			}
		}
		canonical, err := full.Marshal()
		if err != nil {
			return
		}
		if got, err = d.trimmed(canonical); err != nil {
			t.Fatalf("the Node as the generated code marshals it: %v", err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("as marshalled (-Unmarshal and TrimNode +decoder):\n%s", d)
		}
	})
}

// Decoding a list of Nodes allocates what the cache keeps of each Node and little else: the
// Node, its strings, labels map and addresses (the labels shared with other Nodes cost none).
func TestDecodeTrimmedNodesAllocations(t *testing.T) {
	const count = 200
	pb := encodeProtobuf(t, fatNodeList(count))
	if _, err := decodeTrimmedNodes(bytes.NewReader(pb)); err != nil { // the shared labels
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := decodeTrimmedNodes(bytes.NewReader(pb)); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per Node", allocs/count)
	if per := allocs / count; per > 12 {
		t.Errorf("%.1f allocations per Node decoded, want at most 12", per)
	}
}
