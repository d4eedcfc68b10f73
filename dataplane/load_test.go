package dataplane

import "testing"

func TestLoad(t *testing.T) {
	requireRoot(t)
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
}
