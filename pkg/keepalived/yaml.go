package keepalived

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"
)

// YAML renders the Secrets and then the VirtualIPs, each sorted by name, as one multi-document
// YAML stream. Keys are sorted, and empty status and creationTimestamp are left out, so the
// same Result always gives the same bytes.
func (r *Result) YAML() ([]byte, error) {
	var docs []any
	secrets := append(r.Secrets[:0:0], r.Secrets...)
	sort.SliceStable(secrets, func(i, j int) bool { return secrets[i].Name < secrets[j].Name })
	for i := range secrets {
		docs = append(docs, &secrets[i])
	}
	vips := append(r.VirtualIPs[:0:0], r.VirtualIPs...)
	sort.SliceStable(vips, func(i, j int) bool { return vips[i].Name < vips[j].Name })
	for i := range vips {
		docs = append(docs, &vips[i])
	}
	var out bytes.Buffer
	for i, d := range docs {
		obj, err := cleanObject(d)
		if err != nil {
			return nil, err
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("keepalived: encode YAML: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), nil
}

// cleanObject turns an API object into a generic map without the fields an object written
// by hand does not have: status, metadata.creationTimestamp: null.
func cleanObject(obj any) (map[string]any, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("keepalived: encode object: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("keepalived: decode object: %w", err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		if md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
	}
	return m, nil
}
