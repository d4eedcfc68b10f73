package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mizar-net/mizar/testbed"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("10x10, 100x20")
	if err != nil {
		t.Fatal(err)
	}
	if want := []testbed.Size{{Endpoints: 10, Hosts: 10}, {Endpoints: 100, Hosts: 20}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "10", "10x", "x10", "10x10,abc", "10y10"} {
		if _, err := parseSizes(bad); err == nil || !strings.Contains(err.Error(), "--sizes") {
			t.Errorf("%q: got %v, want an error naming --sizes", bad, err)
		}
	}
}

// A bad sweep is refused before anything is built.
func TestBenchBadSizes(t *testing.T) {
	var out, errw strings.Builder
	err := mizar([]string{"bench", "--sizes", "10x"}, &out, &errw)
	if err == nil || !strings.Contains(err.Error(), `item 1 "10x"`) {
		t.Fatalf("got %v, want the bad item named", err)
	}
}
