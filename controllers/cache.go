package controllers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions are the cache options of the agent's manager (docs/design.md §7.2). Every
// agent caches every Node, so in a big cluster Nodes are most of its heap: it keeps of each only
// what the controllers read (TrimNode). Of every other cached object (VirtualIPs and
// VirtualIPMembers) it drops metadata.managedFields, which nothing reads.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Node{}: {Transform: TrimNode}},
	}
}

// ClientOptions are the client options of the agent's manager: Secrets have no informer, so
// the agent never lists or watches them (its Role grants get only, docs/design.md §7.4); the
// VirtualIPReconciler gets the one a VirtualIP references by name (VirtualIPReconciler.Secrets).
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// TrimNode is the cache transform of Nodes. It keeps what the controllers read of a Node:
// its name, labels (spec.nodeSelector) and its InternalIP and ExternalIP addresses (members,
// unicast peers, the check that no virtual address is a node's: nodeAddrs, nodeAddressInUse),
// with its UID and resourceVersion; it drops the rest (managedFields, annotations, spec,
// images, conditions, nodeInfo, capacity, its Hostname and DNS addresses, ...), which is most
// of a Node. Anything but a Node passes unchanged; it is idempotent, as a cache transform must
// be, and a Node already trimmed (decodeTrimmedNodes's) is returned as it is, without a copy.
func TrimNode(in any) (any, error) {
	n, ok := in.(*corev1.Node)
	if !ok {
		return in, nil
	}
	if isTrimmed(n) {
		return n, nil
	}
	var labels map[string]string
	if n.Labels != nil {
		labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			if v == n.Name {
				v = n.Name // kubernetes.io/hostname, most often
			} else {
				v = nodeLabelStrings.intern(v)
			}
			labels[nodeLabelStrings.intern(k)] = v
		}
	}
	var addrs []corev1.NodeAddress
	if k := keptAddresses(n.Status.Addresses); k > 0 {
		addrs = make([]corev1.NodeAddress, 0, k)
		for _, a := range n.Status.Addresses {
			if keptAddress(a.Type) {
				addrs = append(addrs, a)
			}
		}
	}
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          labels,
		},
		Status: corev1.NodeStatus{Addresses: addrs},
	}, nil
}

// keptAddress reports whether TrimNode keeps a Node's addresses of type t: the ones the
// controllers read (nodeAddrs, nodeAddressInUse).
func keptAddress(t corev1.NodeAddressType) bool {
	return t == corev1.NodeInternalIP || t == corev1.NodeExternalIP
}

func keptAddresses(addrs []corev1.NodeAddress) int {
	k := 0
	for _, a := range addrs {
		if keptAddress(a.Type) {
			k++
		}
	}
	return k
}

// isTrimmed reports whether n is as TrimNode makes a Node: nothing but its name, UID,
// resourceVersion, labels (keys and values the shared copies, or the name) and kept addresses
// (no spare capacity), beside its type. Fields are compared by reflection, so that a field a
// later API version adds is not kept unseen.
func isTrimmed(n *corev1.Node) bool {
	if !zeroExcept(reflect.ValueOf(&n.ObjectMeta).Elem(), "Name", "UID", "ResourceVersion", "Labels") ||
		!reflect.ValueOf(&n.Spec).Elem().IsZero() ||
		!zeroExcept(reflect.ValueOf(&n.Status).Elem(), "Addresses") {
		return false
	}
	if a := n.Status.Addresses; cap(a) != len(a) || keptAddresses(a) != len(a) {
		return false
	}
	for k, v := range n.Labels {
		if !nodeLabelStrings.shared(k) {
			return false
		}
		if v == n.Name {
			if !sameString(v, n.Name) {
				return false
			}
		} else if !nodeLabelStrings.shared(v) {
			return false
		}
	}
	return true
}

// zeroExcept reports whether every field of the struct v but the named ones is its zero value.
func zeroExcept(v reflect.Value, except ...string) bool {
	t := v.Type()
	for i := range t.NumField() {
		if !slices.Contains(except, t.Field(i).Name) && !v.Field(i).IsZero() {
			return false
		}
	}
	return true
}

// sameString reports whether a and b are one copy of a string.
func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b))
}

// nodeLabelStrings holds one copy of the label keys and values that Nodes share: a Node
// decoded from the API server has its own copy of every string, and the dozen labels of a
// cloud Node (region, zone, instance type, OS, architecture, roles) are the same keys, and
// mostly the same values, on every Node. With 5000 Nodes that is most of their labels' memory.
var nodeLabelStrings = &interner{max: 4096, maxLen: 128}

// interner returns one copy of each string it has seen, holding at most max of at most
// maxLen bytes each: past that it returns strings as they are.
type interner struct {
	mu      sync.Mutex
	strings map[string]string
	max     int
	maxLen  int
}

// shared reports whether s is the copy intern returns for it (as it would return it now).
func (i *interner) shared(s string) bool { return sameString(i.intern(s), s) }

func (i *interner) intern(s string) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if v, ok := i.strings[s]; ok {
		return v
	}
	i.add(s)
	return s
}

// internBytes is intern(string(b)), with no allocation for a string the table holds.
func (i *interner) internBytes(b []byte) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if v, ok := i.strings[string(b)]; ok {
		return v
	}
	s := string(b)
	i.add(s)
	return s
}

func (i *interner) add(s string) {
	if len(s) <= i.maxLen && len(i.strings) < i.max {
		if i.strings == nil {
			i.strings = map[string]string{}
		}
		i.strings[s] = s
	}
}

// CacheOptionsFor are CacheOptions with the Nodes' lists read through cfg one Node at a time
// (listTrimmedNodes), each trimmed as it is read: the agent's cache options. The Node informer
// of the cache otherwise reads a list whole and decodes it before the transform sees any Node:
// with 5000 Nodes of 12 kB, the response (62 MB of protobuf), a copy of it and 5000 full Nodes
// at once, a peak of 377 MiB in an agent whose steady heap is 25 MiB (docs/design.md §7.2).
// When the API server streams the initial Nodes as watch events instead (the WatchList
// feature, which needs etcd 3.5.13 or later), no list is made. Watches are unchanged.
func CacheOptionsFor(cfg *rest.Config) cache.Options {
	opts := CacheOptions()
	opts.NewInformer = func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
		if l, ok := lw.(*toolscache.ListWatch); ok && isNode(obj) {
			if rc, err := nodeListClient(cfg); err == nil {
				// The agent's cache selects no Nodes by label or field (CacheOptions): the
				// options the reflector passes are the whole request.
				streamed := *l
				streamed.ListFunc = nil
				streamed.ListWithContextFunc = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
					return listTrimmedNodes(ctx, rc, o)
				}
				lw = &streamed
			}
		}
		return toolscache.NewSharedIndexInformer(lw, obj, resync, idx)
	}
	return opts
}

func isNode(obj runtime.Object) bool {
	_, ok := obj.(*corev1.Node)
	return ok
}

// nodeListClient is a REST client of the core API group that asks for protobuf.
func nodeListClient(cfg *rest.Config) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

// trimmedNodeList is a NodeList as listTrimmedNodes returns it: its items are pointers to the
// trimmed Nodes. The informer takes a list's items as objects of their own
// (meta.ExtractListWithAlloc): the Nodes of a NodeList it copies out of the list's array, and
// the transform copies each again; these it takes as they are, and TrimNode returns them as
// they are, so that each Node of a list is allocated once (5000 Nodes: no array of 3.9 MB and
// no two sets of 5000 copies at every start).
type trimmedNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []*corev1.Node `json:"items"`
}

// DeepCopyObject copies the list and its Nodes.
func (l *trimmedNodeList) DeepCopyObject() runtime.Object {
	out := &trimmedNodeList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]*corev1.Node, len(l.Items))
		for i, n := range l.Items {
			out.Items[i] = n.DeepCopy()
		}
	}
	return out
}

// listTrimmedNodes lists Nodes as opts say, the request the informer would make, and decodes
// the response as it arrives (decodeTrimmedNodes).
func listTrimmedNodes(ctx context.Context, rc rest.Interface, opts metav1.ListOptions) (*trimmedNodeList, error) {
	body, err := rc.Get().Resource("nodes").VersionedParams(&opts, clientgoscheme.ParameterCodec).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return decodeTrimmedNodes(body)
}

// protobufMagic starts every protobuf-encoded Kubernetes object.
var protobufMagic = []byte("k8s\x00")

// maxNodeBytes bounds one encoded Node (etcd takes at most 1.5 MiB per object by default).
const maxNodeBytes = 16 << 20

// decodeTrimmedNodes decodes a NodeList from r, keeping of each Node what TrimNode keeps.
// Protobuf (a runtime.Unknown whose raw bytes are the NodeList: metadata, then one field per
// Node) is read one Node at a time, so that only one full Node is held at once; anything else
// (JSON) is read whole and decoded, then trimmed.
func decodeTrimmedNodes(r io.Reader) (*trimmedNodeList, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, err := br.Peek(len(protobufMagic)); err != nil || !bytes.Equal(head, protobufMagic) {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, err
		}
		var list corev1.NodeList
		if err := runtime.DecodeInto(clientgoscheme.Codecs.UniversalDecoder(corev1.SchemeGroupVersion), data, &list); err != nil {
			return nil, fmt.Errorf("decoding the list of Nodes: %w", err)
		}
		out := &trimmedNodeList{TypeMeta: list.TypeMeta, ListMeta: list.ListMeta, Items: make([]*corev1.Node, len(list.Items))}
		for i := range list.Items {
			t, _ := TrimNode(&list.Items[i])
			out.Items[i] = t.(*corev1.Node)
		}
		return out, nil
	}
	_, _ = br.Discard(len(protobufMagic))
	p := &protoReader{r: br}
	var (
		list   trimmedNodeList
		listed bool
		buf    []byte
	)
	// runtime.Unknown: typeMeta 1, raw 2, contentEncoding 3, contentType 4.
	for {
		field, wire, err := p.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case field == 1 && wire == wireBytes:
			if buf, err = p.bytes(buf); err != nil {
				return nil, err
			}
			var tm runtime.TypeMeta
			if err := tm.Unmarshal(buf); err != nil {
				return nil, fmt.Errorf("decoding the list of Nodes: %w", err)
			}
			if tm.Kind != "NodeList" {
				return nil, fmt.Errorf("decoding the list of Nodes: the server sent a %s", tm.Kind)
			}
			list.APIVersion, list.Kind = tm.APIVersion, tm.Kind
		case field == 2 && wire == wireBytes:
			if buf, err = p.nodeList(&list, buf); err != nil {
				return nil, err
			}
			listed = true
		case field == 3 && wire == wireBytes:
			if buf, err = p.bytes(buf); err != nil {
				return nil, err
			}
			if len(buf) > 0 {
				return nil, fmt.Errorf("decoding the list of Nodes: content encoding %q", buf)
			}
		default:
			if err := p.skip(wire); err != nil {
				return nil, err
			}
		}
	}
	if !listed {
		return nil, errors.New("decoding the list of Nodes: no list in the response")
	}
	return &list, nil
}

// Protobuf wire types.
const (
	wireVarint     = 0
	wire64         = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wire32         = 5
)

// protoReader reads protobuf fields from a stream, counting the bytes it has read.
type protoReader struct {
	r     *bufio.Reader
	read  uint64
	nodes nodeDecoder
}

func (p *protoReader) ReadByte() (byte, error) {
	b, err := p.r.ReadByte()
	if err == nil {
		p.read++
	}
	return b, err
}

// tag reads a field's tag: io.EOF when the stream ends before it.
func (p *protoReader) tag() (field uint64, wire int, err error) {
	v, err := binary.ReadUvarint(p)
	if err != nil {
		return 0, 0, err
	}
	return v >> 3, int(v & 7), nil
}

func (p *protoReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

// bytes reads a length-delimited field's value into buf, which it returns, grown as needed.
func (p *protoReader) bytes(buf []byte) ([]byte, error) {
	n, err := p.uvarint()
	if err != nil {
		return buf, err
	}
	if n > maxNodeBytes {
		return buf, fmt.Errorf("decoding the list of Nodes: a field of %d bytes", n)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return buf, noEOF(err)
	}
	p.read += n
	return buf, nil
}

func (p *protoReader) discard(n uint64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := p.r.Discard(k)
		p.read += uint64(d)
		if err != nil {
			return noEOF(err)
		}
		n -= uint64(k)
	}
	return nil
}

// skip reads past a field's value.
func (p *protoReader) skip(wire int) error {
	switch wire {
	case wireVarint:
		_, err := p.uvarint()
		return err
	case wire64:
		return p.discard(8)
	case wire32:
		return p.discard(4)
	case wireBytes:
		n, err := p.uvarint()
		if err != nil {
			return err
		}
		return p.discard(n)
	}
	return fmt.Errorf("decoding the list of Nodes: wire type %d", wire)
}

// nodeList reads a NodeList of the length that comes first (metadata 1, items 2) into list,
// trimming each Node as soon as it is decoded. buf is the scratch space, returned.
func (p *protoReader) nodeList(list *trimmedNodeList, buf []byte) ([]byte, error) {
	n, err := p.uvarint()
	if err != nil {
		return buf, err
	}
	end := p.read + n
	for p.read < end {
		field, wire, err := p.tag()
		if err != nil {
			return buf, noEOF(err)
		}
		switch {
		case field == 1 && wire == wireBytes:
			if buf, err = p.bytes(buf); err != nil {
				return buf, err
			}
			if err := list.ListMeta.Unmarshal(buf); err != nil {
				return buf, fmt.Errorf("decoding the list of Nodes: %w", err)
			}
		case field == 2 && wire == wireBytes:
			if buf, err = p.bytes(buf); err != nil {
				return buf, err
			}
			node, err := p.nodes.trimmed(buf)
			if err != nil {
				return buf, fmt.Errorf("decoding the list of Nodes: %w", err)
			}
			list.Items = append(list.Items, node)
		default:
			if err := p.skip(wire); err != nil {
				return buf, err
			}
		}
	}
	if p.read != end {
		return buf, errors.New("decoding the list of Nodes: a field overruns the list")
	}
	return buf, nil
}

// noEOF turns an end of the stream inside a field into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nodeDecoder makes the Node TrimNode would keep of a protobuf-encoded Node (the Node message of
// k8s.io/api/core/v1's generated.proto) without decoding the rest: it reads the fields TrimNode
// keeps and skips the others. A Node of a kubelet is ~12 kB of images, conditions and
// managedFields: decoded whole, every one of 5000 Nodes left ~12 kB of garbage between the few
// hundred bytes kept, and the kept Nodes were scattered over memory the collector could not
// give back. Labels already shared (nodeLabelStrings) cost no allocation. Its scratch space is
// reused from one Node to the next.
type nodeDecoder struct {
	labels [][2][]byte // key, value
	addrs  []rawNodeAddress
}

type rawNodeAddress struct {
	typ  corev1.NodeAddressType
	addr []byte
}

// Field numbers of generated.proto: Node, ObjectMeta, NodeStatus, and the fields 1 and 2 of a
// map entry (key, value) and of a NodeAddress (type, address).
const (
	pbNodeMetadata    = 1
	pbNodeStatus      = 3
	pbMetaName        = 1
	pbMetaUID         = 5
	pbMetaResourceVer = 6
	pbMetaLabels      = 11
	pbStatusAddresses = 5
	pbFirst           = 1
	pbSecond          = 2
)

const errWireType = "field %d: wire type %d"

var errTruncated = errors.New("a field overruns its message")

// trimmed decodes the Node b encodes, as TrimNode would keep it.
func (d *nodeDecoder) trimmed(b []byte) (*corev1.Node, error) {
	d.labels, d.addrs = d.labels[:0], d.addrs[:0]
	var name, uid, rv []byte
	err := protoFields(b, func(field int32, wire int, v []byte) error {
		switch field {
		case pbNodeMetadata:
			if wire != wireBytes {
				return fmt.Errorf(errWireType, field, wire)
			}
			return protoFields(v, func(field int32, wire int, v []byte) error {
				switch field {
				case pbMetaName, pbMetaUID, pbMetaResourceVer, pbMetaLabels:
					if wire != wireBytes {
						return fmt.Errorf("metadata: "+errWireType, field, wire)
					}
				}
				switch field {
				case pbMetaName:
					name = v
				case pbMetaUID:
					uid = v
				case pbMetaResourceVer:
					rv = v
				case pbMetaLabels:
					k, val, err := protoKeyValue(v)
					if err != nil {
						return fmt.Errorf("metadata.labels: %w", err)
					}
					d.labels = append(d.labels, [2][]byte{k, val})
				}
				return nil
			})
		case pbNodeStatus:
			if wire != wireBytes {
				return fmt.Errorf(errWireType, field, wire)
			}
			return protoFields(v, func(field int32, wire int, v []byte) error {
				if field != pbStatusAddresses {
					return nil
				}
				if wire != wireBytes {
					return fmt.Errorf("status: "+errWireType, field, wire)
				}
				typ, addr, err := protoKeyValue(v) // type 1, address 2
				if err != nil {
					return fmt.Errorf("status.addresses: %w", err)
				}
				for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
					if string(typ) == string(t) {
						d.addrs = append(d.addrs, rawNodeAddress{typ: t, addr: addr})
					}
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := &corev1.Node{}
	n.Name, n.UID, n.ResourceVersion = string(name), types.UID(uid), string(rv)
	if len(d.labels) > 0 {
		n.Labels = make(map[string]string, len(d.labels))
		for _, kv := range d.labels {
			v := n.Name // kubernetes.io/hostname, most often
			if string(kv[1]) != n.Name {
				v = nodeLabelStrings.internBytes(kv[1])
			}
			n.Labels[nodeLabelStrings.internBytes(kv[0])] = v
		}
	}
	if len(d.addrs) > 0 {
		n.Status.Addresses = make([]corev1.NodeAddress, len(d.addrs))
		for i, a := range d.addrs {
			n.Status.Addresses[i] = corev1.NodeAddress{Type: a.typ, Address: string(a.addr)}
		}
	}
	return n, nil
}

// protoKeyValue reads the string fields 1 and 2 of message b (a map entry's key and value, a
// NodeAddress's type and address): empty when absent, the last when repeated, as the generated
// code decodes them.
func protoKeyValue(b []byte) (k, v []byte, err error) {
	err = protoFields(b, func(field int32, wire int, val []byte) error {
		if field != pbFirst && field != pbSecond {
			return nil
		}
		if wire != wireBytes {
			return fmt.Errorf(errWireType, field, wire)
		}
		if field == pbFirst {
			k = val
		} else {
			v = val
		}
		return nil
	})
	return k, v, err
}

// protoFields calls f with each field of the protobuf message b: its number, its wire type and,
// for a length-delimited field, its bytes (within b). Field numbers are read as the generated
// code reads them (32 bits); a group, which the API server never sends, is skipped whole, as
// the generated code skips it.
func protoFields(b []byte, f func(field int32, wire int, v []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errTruncated
		}
		b = b[n:]
		field, wire := int32(tag>>3), int(tag&7)
		if field <= 0 || wire == wireEndGroup {
			return fmt.Errorf("a field numbered %d, wire type %d", field, wire)
		}
		var (
			v   []byte
			err error
		)
		if v, b, err = protoValue(b, wire); err != nil {
			return err
		}
		if err := f(field, wire, v); err != nil {
			return err
		}
	}
	return nil
}

// protoValue splits b, which follows a field's tag of wire type wire, into the field's value
// (the bytes of a length-delimited field, else nil) and what follows it.
func protoValue(b []byte, wire int) (v, rest []byte, err error) {
	switch wire {
	case wireVarint:
		_, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, nil, errTruncated
		}
		return nil, b[n:], nil
	case wire64, wire32:
		size := 8
		if wire == wire32 {
			size = 4
		}
		if len(b) < size {
			return nil, nil, errTruncated
		}
		return nil, b[size:], nil
	case wireBytes:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, nil, errTruncated
		}
		return b[n : n+int(l)], b[n+int(l):], nil
	case wireStartGroup:
		for depth := 1; depth > 0; {
			tag, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, nil, errTruncated
			}
			b = b[n:]
			switch w := int(tag & 7); w {
			case wireStartGroup:
				depth++
			case wireEndGroup:
				depth--
			default:
				if _, b, err = protoValue(b, w); err != nil {
					return nil, nil, err
				}
			}
		}
		return nil, b, nil
	}
	return nil, nil, fmt.Errorf("wire type %d", wire)
}
