package dataplane

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// xdpMd is struct xdp_md, the context BPF_PROG_TEST_RUN accepts for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// progTestRunAttr is the test part of union bpf_attr.
type progTestRunAttr struct {
	ProgFd      uint32
	Retval      uint32
	DataSizeIn  uint32
	DataSizeOut uint32
	DataIn      uint64
	DataOut     uint64
	Repeat      uint32
	Duration    uint32
	CtxSizeIn   uint32
	CtxSizeOut  uint32
	CtxIn       uint64
	CtxOut      uint64
	Flags       uint32
	CPU         uint32
	BatchSize   uint32
	_           uint32
}

const bpfProgTestRun = 10 // BPF_PROG_TEST_RUN

// testRun runs prog once on a copy of pkt, with ingress_ifindex set when nonzero, and returns
// the verdict, the output frame, and the kernel's reported duration. cilium/ebpf's Run does not
// return the duration and its Benchmark takes no context, hence the raw syscall.
func testRun(prog *ebpf.Program, pkt []byte, ingress uint32) (uint32, []byte, time.Duration, error) {
	out := make([]byte, len(pkt)+512)
	in := append([]byte(nil), pkt...)
	var ctx xdpMd
	attr := progTestRunAttr{
		ProgFd:      uint32(prog.FD()),
		DataSizeIn:  uint32(len(in)),
		DataSizeOut: uint32(len(out)),
		DataIn:      uint64(uintptr(unsafe.Pointer(&in[0]))),
		DataOut:     uint64(uintptr(unsafe.Pointer(&out[0]))),
		Repeat:      1,
	}
	if ingress != 0 {
		ctx = xdpMd{DataEnd: uint32(len(in)), IngressIfindex: ingress}
		attr.CtxSizeIn = uint32(unsafe.Sizeof(ctx))
		attr.CtxIn = uint64(uintptr(unsafe.Pointer(&ctx)))
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	runtime.KeepAlive(&ctx)
	if errno != 0 {
		return 0, nil, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
	}
	return attr.Retval, out[:attr.DataSizeOut], time.Duration(attr.Duration), nil
}

var _ = binary.BigEndian
