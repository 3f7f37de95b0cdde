package bench_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kube-vrrp/kube-vrrp/api/v1alpha1"
	"github.com/kube-vrrp/kube-vrrp/internal/envtestassets"
	"github.com/kube-vrrp/kube-vrrp/pkg/vrrp"
)

var (
	apiApplySizes = flag.String("apiscale.apply-sizes", "10,100,500,1000",
		"BenchmarkStatusApplyCost: comma-separated numbers of members of the VirtualIP")
	apiApplyCount   = flag.Int("apiscale.apply-count", 50, "BenchmarkStatusApplyCost: applies measured per size and writer")
	apiApplyProfile = flag.String("apiscale.apply-profile", "",
		"BenchmarkStatusApplyCost: write kube-apiserver's CPU profile over each size's agent applies to PREFIX-N.pprof")
)

// BenchmarkStatusApplyCost measures what one node's report costs kube-apiserver as a
// VirtualIP's members grow, apart from every watcher and agent: one real kube-apiserver and
// etcd (envtest's) with the agent's RBAC and the member policy (config/policy), and for each
// size N of -apiscale.apply-sizes a VirtualIP with N members, each applied under its node's
// field manager, and its summary (prepopulate). Then node 1's agent applies its member
// -apiscale.apply-count times, its state changing each time (Backup, Fault): as the agent (its
// identity, so the policy reviews each write) and, for comparison, as the admin under the same
// field manager (not reviewed). Each member is an object of its own, so the cost should not
// depend on N, as it did when the reports were entries of the VirtualIP's status, each apply
// costing more with every entry (docs/design.md §7.5). It prints, per size, the time each
// apply took as the writer saw it (p50, p99), the API server's own
// (apiserver_request_duration_seconds, mean) and its CPU per apply; nothing watches, so none of
// that is the fan-out to watchers.
// With -apiscale.apply-profile it writes kube-apiserver's CPU profile over the agent's applies
// of each size. It asserts nothing.
func BenchmarkStatusApplyCost(b *testing.B) {
	dir := envtestassets.Require(b)
	var sizes []int
	for _, f := range strings.Split(*apiApplySizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > apiMaxNodes {
			b.Fatalf("-apiscale.apply-sizes: %q: want 2..%d", f, apiMaxNodes)
		}
		sizes = append(sizes, n)
	}
	root, err := envtestassets.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		env := &ctrlenvtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: dir,
		}
		cfg, err := env.Start()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = env.Stop() })
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = -1, 0
		sch, err := apiScaleScheme()
		if err != nil {
			b.Fatal(err)
		}
		e := &apiScaleEnv{cfg: cfg, apiTraffic: &apiTraffic{}, etcd: env.ControlPlane.Etcd.URL, masters: make([]int, len(sizes))}
		if e.admin, err = client.NewWithWatch(cfg, client.Options{Scheme: sch}); err != nil {
			b.Fatal(err)
		}
		if e.hc, err = rest.HTTPClientFor(cfg); err != nil {
			b.Fatal(err)
		}
		ctx := b.Context()
		if err := e.install(ctx, root); err != nil {
			b.Fatal(err)
		}
		agentCfg := e.agentConfig(1)
		agentCfg.WrapTransport = nil
		agent, err := client.New(agentCfg, client.Options{Scheme: sch})
		if err != nil {
			b.Fatal(err)
		}
		var rows []apiApplyRow
		for j, n := range sizes {
			e.size = apiScaleSize{nodes: n, vips: len(sizes)}
			vip := apiSimVIP(j)
			if err := e.admin.Create(ctx, vip); err != nil {
				b.Fatal(err)
			}
			if err := e.prepopulate(ctx, j); err != nil {
				b.Fatal(err)
			}
			row := apiApplyRow{members: n}
			stopProfile, profiling := func() error { return nil }, time.Duration(0)
			if *apiApplyProfile != "" {
				profiling = apiApplyProfileLength
				stopProfile = e.apiserverProfile(ctx, fmt.Sprintf("%s-%d.pprof", *apiApplyProfile, n), profiling)
			}
			if row.agent, err = e.applyRound(ctx, agent, vip, n, profiling); err != nil {
				b.Fatal(err)
			}
			if err := stopProfile(); err != nil {
				b.Error(err)
			}
			if row.admin, err = e.applyRound(ctx, e.admin, vip, n, 0); err != nil {
				b.Fatal(err)
			}
			rows = append(rows, row)
			fmt.Fprintf(os.Stderr, "%s BenchmarkStatusApplyCost: %d members: %s as the agent, %s as the admin\n",
				time.Now().Format("15:04:05"), n, row.agent, row.admin)
		}
		printAPIApplyTable(b, rows)
	}
}

type apiApplyRow struct {
	members      int
	agent, admin apiApplyStats
}

type apiApplyStats struct {
	client      []time.Duration
	server, cpu float64 // the API server's seconds per apply: request duration, CPU
}

func (s apiApplyStats) String() string {
	return fmt.Sprintf("p50 %v, p99 %v at the writer; %.0f ms at the API server, %.0f ms of its CPU per apply",
		apiQuantile(s.client, 0.5).Round(time.Millisecond), apiQuantile(s.client, 0.99).Round(time.Millisecond),
		1000*s.server, 1000*s.cpu)
}

// apiApplyProfileLength is how long kube-apiserver's profile of each size's agent applies runs;
// the applies go on that long.
const apiApplyProfileLength = 20 * time.Second

// applyRound applies node 1's member of vip (one of n members) -apiscale.apply-count times
// through c, and on for at least minimum, its state changing each time, and measures them.
func (e *apiScaleEnv) applyRound(ctx context.Context, c client.Client, vip *v1alpha1.VirtualIP, n int, minimum time.Duration) (apiApplyStats, error) {
	var s apiApplyStats
	j, err := strconv.Atoi(strings.TrimPrefix(vip.Name, "vip-"))
	if err != nil {
		return s, err
	}
	before, err := e.snapshot(ctx)
	if err != nil {
		return s, err
	}
	start := time.Now()
	for k := 0; k < *apiApplyCount || time.Since(start) < minimum; k++ {
		entry := apiSimEntry(1, j, false)
		if k%2 == 0 {
			entry["state"], entry["reason"] = vrrp.Fault.String(), vrrp.ReasonProbeFailed
		}
		t := time.Now()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(apiSimMember(apiSimNodeName(1), j, vip.UID, entry)),
			client.FieldOwner("kube-vrrp-agent/"+apiSimNodeName(1)), client.ForceOwnership); err != nil {
			return s, fmt.Errorf("%d members: apply %d: %w", n, k+1, err)
		}
		s.client = append(s.client, time.Since(t))
	}
	after, err := e.snapshot(ctx)
	if err != nil {
		return s, err
	}
	d := after.sub(before)
	if a := d.memberApplies; a.n > 0 {
		s.server, s.cpu = a.seconds/a.n, d.apiCPU/a.n
	}
	return s, nil
}

// apiserverProfile starts a CPU profile of kube-apiserver (/debug/pprof/profile) of length d
// into path; the returned function waits for it and says how it went.
func (e *apiScaleEnv) apiserverProfile(ctx context.Context, path string, d time.Duration) func() error {
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(e.cfg.Host, "/"), int(d.Seconds())), nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("kube-apiserver profile: %s", resp.Status)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return func() error { return <-done }
}

func printAPIApplyTable(b *testing.B, rows []apiApplyRow) {
	var sb strings.Builder
	w := newTable(&sb)
	fmt.Fprintf(w, "members\tagent p50\tagent p99\tagent: API server ms/apply\tagent: API server CPU ms/apply\tadmin p50\tadmin: API server ms/apply\tadmin: API server CPU ms/apply\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%v\t%v\t%.1f\t%.1f\t%v\t%.1f\t%.1f\n", r.members,
			apiQuantile(r.agent.client, 0.5).Round(100*time.Microsecond), apiQuantile(r.agent.client, 0.99).Round(100*time.Microsecond),
			1000*r.agent.server, 1000*r.agent.cpu,
			apiQuantile(r.admin.client, 0.5).Round(100*time.Microsecond), 1000*r.admin.server, 1000*r.admin.cpu)
	}
	w.Flush()
	out := fmt.Sprintf("\nmember apply cost: one node's VirtualIPMember applied (its state changing each time) while the VirtualIP has N\n"+
		"members, each applied under its node's field manager; no watcher. agent: with the agent's identity (the member policy\n"+
		"reviews it); admin: the same apply as the admin (not reviewed). p50/p99: as the writer saw each apply; ms/apply: the\n"+
		"API server's request duration (mean); CPU ms/apply: the API server's CPU over the applies, per apply. Machine's\n"+
		"load average (1, 5, 15 min) at the end: %s.\n%s", apiLoadAvg(), sb.String())
	fmt.Print(out)
	if _, err := writeOut("member-apply.txt", []byte(out)); err != nil {
		b.Error(err)
	}
}
