package testbed

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value from linux/ethtool.h.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with its union holding a pointer (ifr_data).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// DisableTxChecksum turns TX checksum offload off on ifname in ns, like
// `ethtool -K ifname tx off`, so the kernel computes checksums in software.
// Offloads that depend on it (TSO, ...) go off with it.
func DisableTxChecksum(ns *Namespace, ifname string) error {
	if _, err := ethtool(ns, ifname, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return fmt.Errorf("disable tx checksum on %s in %s: %w", ifname, ns, err)
	}
	return nil
}

// TxChecksum reports whether TX checksum offload is on for ifname in ns.
func TxChecksum(ns *Namespace, ifname string) (bool, error) {
	v, err := ethtool(ns, ifname, unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("get tx checksum of %s in %s: %w", ifname, ns, err)
	}
	return v != 0, nil
}

// SetGRO turns generic receive offload on or off for ifname in ns, like
// `ethtool -K ifname gro on|off`.
func SetGRO(ns *Namespace, ifname string, on bool) error {
	var data uint32
	if on {
		data = 1
	}
	if _, err := ethtool(ns, ifname, unix.ETHTOOL_SGRO, data); err != nil {
		return fmt.Errorf("set gro of %s in %s to %t: %w", ifname, ns, on, err)
	}
	return nil
}

// GRO reports whether generic receive offload is on for ifname in ns.
func GRO(ns *Namespace, ifname string) (bool, error) {
	v, err := ethtool(ns, ifname, unix.ETHTOOL_GGRO, 0)
	if err != nil {
		return false, fmt.Errorf("get gro of %s in %s: %w", ifname, ns, err)
	}
	return v != 0, nil
}

// ethtool issues a legacy SIOCETHTOOL ioctl carrying an ethtool_value from a
// socket created inside ns, and returns the data field the kernel left.
func ethtool(ns *Namespace, ifname string, cmd, data uint32) (uint32, error) {
	if err := ValidIfName(ifname); err != nil {
		return 0, err
	}
	var out uint32
	err := doIn(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		v := &ethtoolValue{cmd: cmd, data: data}
		ifr := &ifreqData{data: unsafe.Pointer(v)}
		copy(ifr.name[:], ifname)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(ifr)))
		runtime.KeepAlive(ifr)
		runtime.KeepAlive(v)
		if errno != 0 {
			return errno
		}
		out = v.data
		return nil
	})
	return out, err
}
