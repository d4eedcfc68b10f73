package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StateVersion is the version of the State encoding written by this package.
const StateVersion = 1

// State is the whole desired state of the overlay. Placement is not stored: it is a function
// of the state (Place).
type State struct {
	Version int                  `json:"version"`
	Hosts   map[string]HostState `json:"hosts"`
	VPCs    map[string]VPCState  `json:"vpcs"`
}

// HostState is a host and whether it has failed. A failed host takes no roles and is sent
// nothing until it recovers.
type HostState struct {
	Host
	Failed bool `json:"failed,omitempty"`
}

// VPCState is a VPC with its networks and endpoints, by name.
type VPCState struct {
	VPC
	Networks  map[string]Network  `json:"networks"`
	Endpoints map[string]Endpoint `json:"endpoints"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Version: StateVersion, Hosts: map[string]HostState{}, VPCs: map[string]VPCState{}}
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	out := &State{Version: s.Version, Hosts: maps.Clone(s.Hosts), VPCs: make(map[string]VPCState, len(s.VPCs))}
	if out.Hosts == nil {
		out.Hosts = map[string]HostState{}
	}
	for name, v := range s.VPCs {
		out.VPCs[name] = v.clone()
	}
	return out
}

func (v VPCState) clone() VPCState {
	out := v
	out.Networks = maps.Clone(v.Networks)
	if out.Networks == nil {
		out.Networks = map[string]Network{}
	}
	out.Endpoints = make(map[string]Endpoint, len(v.Endpoints))
	for name, e := range v.Endpoints {
		e.MAC = slices.Clone(e.MAC)
		out.Endpoints[name] = e
	}
	return out
}

// normalize fills nil maps, so a decoded state is usable as is.
func (s *State) normalize() {
	if s.Hosts == nil {
		s.Hosts = map[string]HostState{}
	}
	if s.VPCs == nil {
		s.VPCs = map[string]VPCState{}
	}
	for name, v := range s.VPCs {
		if v.Networks == nil {
			v.Networks = map[string]Network{}
		}
		if v.Endpoints == nil {
			v.Endpoints = map[string]Endpoint{}
		}
		s.VPCs[name] = v
	}
}

func encodeState(s *State) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return b, nil
}

func decodeState(b []byte) (*State, error) {
	s := NewState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("decode state: version %d, this controller reads %d", s.Version, StateVersion)
	}
	s.normalize()
	return s, nil
}

// Store keeps the desired state across restarts. Load returns an empty state when nothing was
// saved.
type Store interface {
	Load() (*State, error)
	Save(*State) error
}

// MemoryStore is a Store in memory. It keeps an encoded copy, so it sees the same encoding
// errors as a durable store and callers cannot alias what it holds.
type MemoryStore struct {
	mu    sync.Mutex
	saved []byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

func (m *MemoryStore) Load() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		return NewState(), nil
	}
	return decodeState(m.saved)
}

func (m *MemoryStore) Save(s *State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.saved = b
	m.mu.Unlock()
	return nil
}

var (
	boltBucket = []byte("mizar")
	boltKey    = []byte("state")
)

// BoltStore is a Store in a bbolt file: the whole state as JSON under one key, replaced in one
// transaction by each Save.
type BoltStore struct {
	db *bolt.DB
}

// OpenBoltStore opens or creates the bbolt file at path. It fails if another process holds the
// file for longer than a second.
func OpenBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create bucket in %s: %w", path, err), db.Close())
	}
	return &BoltStore{db: db}, nil
}

func (b *BoltStore) Load() (*State, error) {
	var raw []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		raw = slices.Clone(tx.Bucket(boltBucket).Get(boltKey))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load state from %s: %w", b.db.Path(), err)
	}
	if raw == nil {
		return NewState(), nil
	}
	return decodeState(raw)
}

func (b *BoltStore) Save(s *State) error {
	raw, err := encodeState(s)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put(boltKey, raw) })
	if err != nil {
		return fmt.Errorf("save state to %s: %w", b.db.Path(), err)
	}
	return nil
}

// Close closes the file.
func (b *BoltStore) Close() error { return b.db.Close() }
