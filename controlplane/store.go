package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	// SaveEndpoint records, on top of what was saved last, that endpoint name of VPC vpc is
	// now e (nil: deleted). Endpoints are the one object there are many of: saving one must
	// cost the same whatever their number, so it is not a Save of the whole state.
	SaveEndpoint(vpc, name string, e *Endpoint) error
}

// MemoryStore is a Store in memory. Save keeps a copy that went through the encoding, so it
// sees the same encoding errors as a durable store and callers cannot alias what it holds.
type MemoryStore struct {
	mu    sync.Mutex
	saved *State
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

func (m *MemoryStore) Load() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		return NewState(), nil
	}
	return m.saved.Clone(), nil
}

func (m *MemoryStore) Save(s *State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	saved, err := decodeState(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.saved = saved
	m.mu.Unlock()
	return nil
}

func (m *MemoryStore) SaveEndpoint(vpc, name string, e *Endpoint) error {
	var raw []byte
	if e != nil {
		var err error
		if raw, err = json.Marshal(e); err != nil {
			return fmt.Errorf("encode endpoint %s: %w", name, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		m.saved = NewState()
	}
	return putEndpoint(m.saved, vpc, name, raw)
}

// putEndpoint sets (raw non-nil: its encoding) or deletes an endpoint of s.
func putEndpoint(s *State, vpc, name string, raw []byte) error {
	v, ok := s.VPCs[vpc]
	if !ok {
		return fmt.Errorf("save endpoint %s: vpc %q: %w: not saved", name, vpc, ErrNotFound)
	}
	if raw == nil {
		delete(v.Endpoints, name)
		return nil
	}
	var e Endpoint
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("decode endpoint %s: %w", name, err)
	}
	v.Endpoints[name] = e
	return nil
}

var (
	boltBucket = []byte("mizar")
	boltKey    = []byte("state")
	// Endpoints live apart from the state, one key each (VPC, NUL, name), so that one endpoint
	// is one small write.
	boltEndpoints = []byte("endpoints")
)

// BoltStore is a Store in a bbolt file: the state without its endpoints as JSON under one key,
// and each endpoint under a key of its own.
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
		if _, err := tx.CreateBucketIfNotExists(boltBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(boltEndpoints)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create buckets in %s: %w", path, err), db.Close())
	}
	return &BoltStore{db: db}, nil
}

func endpointKey(vpc, name string) []byte { return []byte(vpc + "\x00" + name) }

func (b *BoltStore) Load() (*State, error) {
	var s *State
	err := b.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(boltBucket).Get(boltKey)
		if raw == nil {
			s = NewState()
			return nil
		}
		var err error
		if s, err = decodeState(raw); err != nil {
			return err
		}
		return tx.Bucket(boltEndpoints).ForEach(func(k, v []byte) error {
			vpc, name, ok := strings.Cut(string(k), "\x00")
			if !ok {
				return fmt.Errorf("endpoint key %q: no vpc", k)
			}
			return putEndpoint(s, vpc, name, v)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state from %s: %w", b.db.Path(), err)
	}
	return s, nil
}

// Save replaces the whole state, endpoints included.
func (b *BoltStore) Save(s *State) error {
	bare := *s
	bare.VPCs = make(map[string]VPCState, len(s.VPCs))
	eps := map[string][]byte{}
	for name, v := range s.VPCs {
		for en, e := range v.Endpoints {
			raw, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode endpoint %s: %w", en, err)
			}
			eps[string(endpointKey(name, en))] = raw
		}
		v.Endpoints = nil
		bare.VPCs[name] = v
	}
	raw, err := encodeState(&bare)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(boltBucket).Put(boltKey, raw); err != nil {
			return err
		}
		if err := tx.DeleteBucket(boltEndpoints); err != nil {
			return err
		}
		bk, err := tx.CreateBucket(boltEndpoints)
		if err != nil {
			return err
		}
		for k, v := range eps {
			if err := bk.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state to %s: %w", b.db.Path(), err)
	}
	return nil
}

func (b *BoltStore) SaveEndpoint(vpc, name string, e *Endpoint) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltEndpoints)
		if e == nil {
			return bk.Delete(endpointKey(vpc, name))
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode endpoint %s: %w", name, err)
		}
		return bk.Put(endpointKey(vpc, name), raw)
	})
	if err != nil {
		return fmt.Errorf("save endpoint %s of vpc %s to %s: %w", name, vpc, b.db.Path(), err)
	}
	return nil
}

// Close closes the file.
func (b *BoltStore) Close() error { return b.db.Close() }
