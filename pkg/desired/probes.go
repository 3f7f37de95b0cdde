package desired

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	probepkg "github.com/kube-vrrp/kube-vrrp/pkg/probe"
)

// Probes translates spec.probes into probe Specs (defaults are the probe package's: interval
// 1s, timeout = interval, fall and rise 1). It checks each with probe's own rules, so a
// VirtualIP written before a CRD rule existed is still refused here.
func Probes(vip *v1alpha1.VirtualIP) ([]probepkg.Spec, error) {
	out := make([]probepkg.Spec, 0, len(vip.Spec.Probes))
	for i := range vip.Spec.Probes {
		p := &vip.Spec.Probes[i]
		s := probepkg.Spec{Name: p.Name, Weight: int(p.Weight)}
		switch {
		case p.Process != nil:
			s.Kind, s.Process, s.Executable = probepkg.KindProcess, p.Process.Name, p.Process.Executable
		case p.TCP != nil:
			s.Kind, s.Address = probepkg.KindTCP, p.TCP.Address
		case p.HTTP != nil:
			s.Kind, s.URL = probepkg.KindHTTP, p.HTTP.URL
			if p.HTTP.ExpectedStatus != nil {
				s.ExpectedStatus = int(*p.HTTP.ExpectedStatus)
			}
			if p.HTTP.TLS != nil {
				s.HTTPS = httpsOptions(p.HTTP.TLS)
				if err := checkTLSScheme(p.HTTP); err != nil {
					return nil, fmt.Errorf("VirtualIP %q: spec.probes[%d]: probe %q: %w", vip.Name, i, p.Name, err)
				}
			}
		case p.Exec != nil:
			s.Kind, s.Command = probepkg.KindExec, append([]string(nil), p.Exec.Command...)
		case p.Interface != nil:
			s.Kind, s.Interface = probepkg.KindInterface, p.Interface.Name
		case p.File != nil:
			s.Kind, s.Path = probepkg.KindFile, p.File.Path
		}
		if p.Interval != nil {
			s.Interval = p.Interval.Duration
		}
		if p.Timeout != nil {
			s.Timeout = p.Timeout.Duration
		}
		if p.Fall != nil {
			s.Fall = int(*p.Fall)
		}
		if p.Rise != nil {
			s.Rise = int(*p.Rise)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("VirtualIP %q: spec.probes[%d]: %w", vip.Name, i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// httpsOptions are the probe's HTTPS options of an http probe's tls.
func httpsOptions(t *v1alpha1.HTTPProbeTLS) probepkg.HTTPSOptions {
	return probepkg.HTTPSOptions{
		CAFile:             t.CAFile,
		CertFile:           t.CertFile,
		KeyFile:            t.KeyFile,
		BearerTokenFile:    t.BearerTokenFile,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
}

// checkTLSScheme refuses a tls that sets nothing on an http probe whose URL is not https://,
// as the CRD does (any tls needs an https:// URL): probe.CheckHTTPS refuses the settings
// themselves, and a tls without them is no setting to check. An unparsable URL is left to
// probe.CheckURL.
func checkTLSScheme(p *v1alpha1.HTTPProbe) error {
	if p.TLS == nil || httpsOptions(p.TLS) != (probepkg.HTTPSOptions{}) {
		return nil
	}
	if u, err := url.Parse(p.URL); err == nil && u.Scheme != "https" {
		return errors.New("tls needs an https:// URL: change the URL to https:// or remove tls")
	}
	return nil
}
