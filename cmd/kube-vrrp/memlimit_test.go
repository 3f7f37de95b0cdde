package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// The memory limit is read from the process's cgroup, v2 or v1, at its path below the mount or
// at the mount's root (a container's own cgroup namespace); "no limit" and nothing to read give
// none.
func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		self  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{name: "v2, cgroup namespace", self: "0::/\n", files: map[string]string{"memory.max": "268435456\n"}, want: 256 << 20, ok: true},
		{name: "v2, no limit", self: "0::/\n", files: map[string]string{"memory.max": "max\n"}},
		{name: "v2, path below the mount", self: "0::/kubepods.slice/pod1/cri-c1\n",
			files: map[string]string{"kubepods.slice/pod1/cri-c1/memory.max": "134217728\n", "memory.max": "999999999999\n"},
			want:  128 << 20, ok: true},
		{name: "v2, root cgroup", self: "0::/\n"},
		{name: "v1", self: "12:pids:/kubepods/pod1/c1\n4:memory:/kubepods/pod1/c1\n1:name=systemd:/kubepods/pod1/c1\n",
			files: map[string]string{"memory/kubepods/pod1/c1/memory.limit_in_bytes": "268435456\n"}, want: 256 << 20, ok: true},
		{name: "v1, controllers joined, namespace", self: "3:cpuacct,memory:/\n",
			files: map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, want: 512 << 20, ok: true},
		{name: "v1, no limit", self: "4:memory:/\n", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}},
		{name: "hybrid: v1 memory, empty v2", self: "4:memory:/user.slice\n0::/user.slice\n",
			files: map[string]string{"memory/user.slice/memory.limit_in_bytes": "1073741824\n"}, want: 1 << 30, ok: true},
		{name: "garbage", self: "0::/\n", files: map[string]string{"memory.max": "lots\n"}},
		{name: "no memory controller", self: "5:cpu:/\n", files: map[string]string{"memory/memory.limit_in_bytes": "1048576\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := cgroupMemoryLimit(tt.self, root)
			if got != tt.want || ok != tt.ok {
				t.Errorf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// GOMEMLIMIT, when set, is the runtime's own: the cgroup is not read.
func TestSetMemoryLimitKeepsGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := setMemoryLimit(); got != 0 {
		t.Errorf("with GOMEMLIMIT set, setMemoryLimit set %d", got)
	}
}

// The daemons' GOGC is daemonGCPercent unless GOGC is set, which the runtime has read then.
func TestSetDaemonGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := setDaemonGCPercent(); got != daemonGCPercent {
		t.Errorf("without GOGC, setDaemonGCPercent set %d, want %d", got, daemonGCPercent)
	}
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Errorf("without GOGC, the collector's GOGC is %d, want %d", got, daemonGCPercent)
	}
	t.Setenv("GOGC", "80")
	if got := setDaemonGCPercent(); got != 0 {
		t.Errorf("with GOGC set, setDaemonGCPercent set %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the collector's GOGC was changed to %d", got)
	}
}
