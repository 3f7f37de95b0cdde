package chaos

import (
	"fmt"
	"os"
	"testing"

	"github.com/kube-vrrp/kube-vrrp/internal/lab"
)

// nice is the niceness of the speakers under test, as in the other labs.
const nice = -10

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := lab.Renice(nice); err != nil {
			fmt.Fprintln(os.Stderr, "chaos tests:", err)
		}
	}
	code := m.Run()
	printAtExit()
	os.Exit(code)
}
