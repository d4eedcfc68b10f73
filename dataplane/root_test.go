package dataplane

import (
	"os"
	"testing"
)

// requireRoot fails, never skips: CI runs as root, and a privileged test that silently skips
// would count as passing.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test loads BPF programs and needs root (CI runs as root)")
	}
}
