package controlplane

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// RecordingAgent is a HostAgent in memory. It records every batch it is sent and keeps the
// table of entries the ops leave, as a host's maps would hold them.
type RecordingAgent struct {
	mu      sync.Mutex
	batches [][]Op
	table   hostTable
	err     error
}

// NewRecordingAgent returns an empty RecordingAgent.
func NewRecordingAgent() *RecordingAgent { return &RecordingAgent{table: hostTable{}} }

// Apply records ops and applies them to the table. When FailWith set an error it records
// nothing and returns that error.
func (a *RecordingAgent) Apply(_ context.Context, ops []Op) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.batches = append(a.batches, slices.Clone(ops))
	for _, op := range ops {
		switch op.Kind {
		case OpUpsertEndpoint, OpUpsertBouncerEntry, OpUpsertNetwork, OpSetBouncers, OpUpsertVPC, OpUpsertNeighbor:
			a.table[keyOf(op)] = op
		case OpDeleteEndpoint:
			delete(a.table, opKey{kind: OpUpsertEndpoint, vni: op.VNI, ip: op.IP})
		case OpDeleteBouncerEntry:
			delete(a.table, opKey{kind: OpUpsertBouncerEntry, vni: op.VNI, ip: op.IP})
		case OpDeleteNetwork:
			delete(a.table, opKey{kind: OpUpsertNetwork, vni: op.VNI, netID: op.NetID})
		case OpDeleteBouncers:
			delete(a.table, opKey{kind: OpSetBouncers, vni: op.VNI, netID: op.NetID})
		case OpDeleteVPC:
			delete(a.table, opKey{kind: OpUpsertVPC, vni: op.VNI})
		case OpDeleteNeighbor:
			delete(a.table, opKey{kind: OpUpsertNeighbor, ip: op.IP})
		default:
			return fmt.Errorf("apply %v: %w: unknown kind", op.Kind, ErrInvalid)
		}
	}
	return nil
}

// FailWith makes Apply fail with err until FailWith(nil).
func (a *RecordingAgent) FailWith(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

// Batches returns the batches applied so far.
func (a *RecordingAgent) Batches() [][]Op {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.batches)
}

// Ops returns every op applied so far, in order.
func (a *RecordingAgent) Ops() []Op {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Concat(a.batches...)
}

// Table returns what the host holds after the ops so far, in dependency order.
func (a *RecordingAgent) Table() []Op {
	a.mu.Lock()
	defer a.mu.Unlock()
	ops := slices.Collect(maps.Values(a.table))
	sortOps(ops)
	return ops
}

// Reset forgets the batches, keeping the table.
func (a *RecordingAgent) Reset() {
	a.mu.Lock()
	a.batches = nil
	a.mu.Unlock()
}

// RecordingAgents is an AgentSet of RecordingAgents, made on first use of each host name.
type RecordingAgents struct {
	mu     sync.Mutex
	agents map[string]*RecordingAgent
}

// NewRecordingAgents returns an empty set.
func NewRecordingAgents() *RecordingAgents {
	return &RecordingAgents{agents: map[string]*RecordingAgent{}}
}

func (s *RecordingAgents) Agent(host string) (HostAgent, error) { return s.Host(host), nil }

// Host returns the agent of host, making it if needed.
func (s *RecordingAgents) Host(host string) *RecordingAgent {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[host]
	if a == nil {
		a = NewRecordingAgent()
		s.agents[host] = a
	}
	return a
}

// Restart replaces the agent of host by an empty one, as a host whose agent restarted.
func (s *RecordingAgents) Restart(host string) *RecordingAgent {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := NewRecordingAgent()
	s.agents[host] = a
	return a
}

// ResetAll forgets the batches of every agent.
func (s *RecordingAgents) ResetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		a.Reset()
	}
}
