package controlplane

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestStores(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) Store
	}{
		{"memory", func(t *testing.T) Store { return NewMemoryStore() }},
		{"bolt", func(t *testing.T) Store {
			s, err := OpenBoltStore(filepath.Join(t.TempDir(), "state.db"))
			must(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			empty, err := s.Load()
			must(t, err)
			if !reflect.DeepEqual(empty, NewState()) {
				t.Fatalf("fresh store loaded %+v, want an empty state", empty)
			}
			c, _ := fixture(t)
			want := c.State()
			must(t, s.Save(want))
			got, err := s.Load()
			must(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestBoltStoreRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenBoltStore(path)
	must(t, err)
	agents := NewRecordingAgents()
	c, err := New(Options{Store: s, Agents: agents})
	must(t, err)
	must(t, c.AddHost(ctx, Host{Name: "h", IP: hostIP(1)}))
	mustVPC(t, c, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	mustNet(t, c, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 1})
	e := mustEP(t, c, Endpoint{Name: "e", VPC: "v", Network: "n", Host: "h"})
	want := c.State()
	must(t, s.Close())

	s, err = OpenBoltStore(path)
	must(t, err)
	defer s.Close()
	c2, err := New(Options{Store: s, Agents: NewRecordingAgents()})
	must(t, err)
	if got := c2.State(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart:\ngot  %+v\nwant %+v", got, want)
	}
	got, err := c2.Endpoint("v", "e")
	must(t, err)
	if got.IP != e.IP || got.MAC.String() != e.MAC.String() {
		t.Errorf("endpoint after restart %+v, want %+v", got, e)
	}
	// Allocation continues from the loaded state.
	e2 := mustEP(t, c2, Endpoint{Name: "e2", VPC: "v", Network: "n", Host: "h"})
	if e2.IP == e.IP {
		t.Errorf("restarted controller reallocated %v", e.IP)
	}
}

type failingStore struct{ MemoryStore }

func (*failingStore) Save(*State) error { return errors.New("disk full") }

func TestSaveErrorChangesNothing(t *testing.T) {
	agents := NewRecordingAgents()
	c, err := New(Options{Store: &failingStore{}, Agents: agents})
	must(t, err)
	err = c.AddHost(ctx, Host{Name: "h", IP: hostIP(1)})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the save error", err)
	}
	if len(c.State().Hosts) != 0 {
		t.Error("host added although the state was not saved")
	}
}

func TestLoadRejectsOtherVersion(t *testing.T) {
	if _, err := decodeState([]byte(`{"version":99}`)); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("got %v, want a version error", err)
	}
}

type failingEndpointStore struct{ MemoryStore }

func (*failingEndpointStore) SaveEndpoint(string, string, *Endpoint) error {
	return errors.New("disk full")
}

// An endpoint is saved as one change, in place; a failed save must leave nothing of it.
func TestSaveEndpointErrorChangesNothing(t *testing.T) {
	agents := NewRecordingAgents()
	c, err := New(Options{Store: &failingEndpointStore{}, Agents: agents})
	must(t, err)
	must(t, c.AddHost(ctx, Host{Name: "h", IP: hostIP(1)}))
	_, err = c.CreateVPC(ctx, VPC{Name: "v", CIDR: pfx("10.0.0.0/16"), Dividers: 1})
	must(t, err)
	_, err = c.CreateNetwork(ctx, Network{Name: "n", VPC: "v", CIDR: pfx("10.0.1.0/24"), Bouncers: 1})
	must(t, err)
	before := c.Stats().Total.Total
	_, err = c.CreateEndpoint(ctx, Endpoint{Name: "e", VPC: "v", Network: "n", Host: "h"})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the save error", err)
	}
	if n := len(c.State().VPCs["v"].Endpoints); n != 0 {
		t.Errorf("%d endpoints in the state after a failed save", n)
	}
	if got := c.Stats().Total.Total; got != before {
		t.Errorf("%d writes sent for an endpoint that was not saved", got-before)
	}
}
