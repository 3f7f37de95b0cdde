package chaos

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Row is one line of the chaos table.
type Row struct {
	// Scenario names the fault, e.g. "one-way loss n1->LAN".
	Scenario string
	// Impl is "kube-vrrp" or "keepalived".
	Impl string
	// Outcome says what happened, e.g. "n2 MASTER, n1 BACKUP" or "forged adverts ignored".
	Outcome string
	// Converge is the time from the fault (or its end) until one MASTER held the VIP; zero
	// when not measured (printed "-").
	Converge time.Duration
	// Left is what was left behind on the hosts after the speakers stopped ("nothing" when
	// clean).
	Left string
	// Pass is false when the scenario's assertions failed.
	Pass bool
}

// table collects the rows of every test in the package and prints them once, sorted, when the
// package's tests end (TestMain), so that `make test` shows one chaos table.
var table struct {
	mu   sync.Mutex
	rows []Row
}

// Record adds a row to the chaos table.
func Record(r Row) {
	table.mu.Lock()
	defer table.mu.Unlock()
	table.rows = append(table.rows, r)
}

// PrintTable writes the chaos table to w.
func PrintTable(w io.Writer) {
	table.mu.Lock()
	rows := slices.Clone(table.rows)
	table.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := strings.Compare(a.Scenario, b.Scenario); c != 0 {
			return c
		}
		return strings.Compare(a.Impl, b.Impl)
	})
	head := []string{"scenario", "impl", "outcome", "converge", "left behind", "pass"}
	cells := [][]string{head}
	for _, r := range rows {
		conv := "-"
		if r.Converge > 0 {
			conv = r.Converge.Round(time.Millisecond).String()
		}
		pass := "ok"
		if !r.Pass {
			pass = "FAIL"
		}
		cells = append(cells, []string{r.Scenario, r.Impl, r.Outcome, conv, r.Left, pass})
	}
	width := make([]int, len(head))
	for _, c := range cells {
		for i, s := range c {
			width[i] = max(width[i], len(s))
		}
	}
	fmt.Fprintln(w, "chaos table:")
	for _, c := range cells {
		var b strings.Builder
		for i, s := range c {
			fmt.Fprintf(&b, "| %-*s ", width[i], s)
		}
		fmt.Fprintln(w, b.String()+"|")
	}
}

// TableEnv names a file the table is also written to: `go test` shows a passing package's
// output only with -v, so `make test` sets it and prints the file.
const TableEnv = "KUBE_VRRP_CHAOS_TABLE"

// printAtExit prints the table on standard output, and into $KUBE_VRRP_CHAOS_TABLE when set;
// TestMain calls it after the tests.
func printAtExit() {
	PrintTable(os.Stdout)
	if path := os.Getenv(TableEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos table:", err)
			return
		}
		PrintTable(f)
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos table:", err)
		}
	}
}
