package hostagent_test

import (
	"errors"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/mizar-net/mizar/controlplane/hostagent"
	"github.com/mizar-net/mizar/dataplane"
)

// TestUseAgentProgram: both agents are accepted for endpoint veths, nothing else is.
func TestUseAgentProgram(t *testing.T) {
	a := hostagent.New(nil, netns.None(), dataplane.Native, nil)
	for _, p := range []dataplane.Program{dataplane.Agent, dataplane.AgentTC} {
		if err := a.UseAgentProgram(p); err != nil {
			t.Errorf("use %s: %v", p, err)
		}
	}
	for _, p := range []dataplane.Program{dataplane.Transit, dataplane.Pass, ""} {
		if err := a.UseAgentProgram(p); !errors.Is(err, hostagent.ErrAgentProgram) {
			t.Errorf("use %q: %v, want ErrAgentProgram", p, err)
		}
	}
}
