// Package testbed builds network-namespace topologies on one machine and runs
// traffic checks inside them, all in-process.
//
// Work inside a namespace never moves the calling goroutine's thread: it runs on
// a fresh goroutine locked to its own OS thread (see Do), in the style of
// containernetworking/plugins pkg/ns. Namespaces are configured from outside
// with netlink handles bound to them (netlink.NewHandleAt).
package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"

	"github.com/mizar-net/mizar/dataplane"
)

// NetnsDir is where named network namespaces are bind-mounted, as by
// `ip netns add` (/var/run is a link to /run).
const NetnsDir = "/run/netns"

// Do runs fn on a new goroutine locked to an OS thread that has been switched
// into ns, and waits for it. The caller's thread is never moved. If the thread
// cannot be switched back to its original namespace it stays locked, so the Go
// runtime terminates it when the goroutine exits instead of reusing it.
//
// Sockets created by fn stay in ns and may be used after Do returns.
func Do(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fmt.Errorf("enter netns: %w", ErrClosed)
	}
	return dataplane.InNamespace(ns, fn)
}

// NewNamed creates a network namespace bind-mounted at NetnsDir/name, like
// `ip netns add name`, and returns an open handle to it. The namespace is
// created on a locked goroutine that switches back afterwards; the caller's
// thread is not moved. The caller closes the handle.
func NewNamed(name string) (netns.NsHandle, error) {
	if err := checkNetnsName(name); err != nil {
		return netns.None(), err
	}
	type result struct {
		h   netns.NsHandle
		err error
	}
	resc := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			resc <- result{netns.None(), fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			err = fmt.Errorf("create netns %s: %w", name, err)
			if !errors.Is(err, os.ErrExist) {
				// netns.NewNamed leaves the mount point behind if the mount fails.
				_ = os.Remove(filepath.Join(NetnsDir, name))
			}
		}
		// netns.NewNamed may have unshared the thread even when it failed.
		if serr := netns.Set(orig); serr != nil {
			if h.IsOpen() {
				h.Close()
				_ = netns.DeleteNamed(name)
			}
			resc <- result{netns.None(), errors.Join(err, fmt.Errorf("return to netns %s: %w", orig, serr))}
			return // thread stays locked and dies
		}
		runtime.UnlockOSThread()
		resc <- result{h, err}
	}()
	res := <-resc
	return res.h, res.err
}

// DeleteNamed removes the named network namespace created by NewNamed. The
// kernel frees the namespace once no handle, socket or thread refers to it.
func DeleteNamed(name string) error {
	if err := checkNetnsName(name); err != nil {
		return err
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// rootHandle returns a handle to the process's own network namespace (that of
// its main thread).
func rootHandle() (netns.NsHandle, error) {
	h, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return netns.None(), fmt.Errorf("open root netns: %w", err)
	}
	return h, nil
}

func checkNetnsName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("netns name %q: %w", name, ErrName)
	}
	return nil
}
