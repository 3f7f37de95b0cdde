package controllers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions are the cache options of the agent's manager (docs/design.md §7.2). Every
// agent caches every Node, so in a big cluster Nodes are most of its heap: it keeps of each only
// what the controllers read (TrimNode). Of every other cached object (VirtualIPs) it drops
// metadata.managedFields, which nothing reads.
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
// its name, labels (spec.nodeSelector) and status.addresses (members, unicast peers, the check
// that no virtual address is a node's), with its UID and resourceVersion; it drops the rest
// (managedFields, annotations, spec, images, conditions, nodeInfo, capacity, ...), which is
// most of a Node. Anything but a Node passes unchanged; it is idempotent, as a cache
// transform must be.
func TrimNode(in any) (any, error) {
	n, ok := in.(*corev1.Node)
	if !ok {
		return in, nil
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
	return &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          labels,
		},
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
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

func (i *interner) intern(s string) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if v, ok := i.strings[s]; ok {
		return v
	}
	if len(s) <= i.maxLen && len(i.strings) < i.max {
		if i.strings == nil {
			i.strings = map[string]string{}
		}
		i.strings[s] = s
	}
	return s
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

// listTrimmedNodes lists Nodes as opts say, the request the informer would make, and decodes
// the response as it arrives (decodeTrimmedNodes).
func listTrimmedNodes(ctx context.Context, rc rest.Interface, opts metav1.ListOptions) (*corev1.NodeList, error) {
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
func decodeTrimmedNodes(r io.Reader) (*corev1.NodeList, error) {
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
		for i := range list.Items {
			t, _ := TrimNode(&list.Items[i])
			list.Items[i] = *t.(*corev1.Node)
		}
		return &list, nil
	}
	_, _ = br.Discard(len(protobufMagic))
	p := &protoReader{r: br}
	var (
		list   corev1.NodeList
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
	wireVarint = 0
	wire64     = 1
	wireBytes  = 2
	wire32     = 5
)

// protoReader reads protobuf fields from a stream, counting the bytes it has read.
type protoReader struct {
	r    *bufio.Reader
	read uint64
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
func (p *protoReader) nodeList(list *corev1.NodeList, buf []byte) ([]byte, error) {
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
			// Unmarshal copies what it keeps out of buf (strings, byte slices).
			var node corev1.Node
			if err := node.Unmarshal(buf); err != nil {
				return buf, fmt.Errorf("decoding the list of Nodes: %w", err)
			}
			t, _ := TrimNode(&node)
			list.Items = append(list.Items, *t.(*corev1.Node))
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
