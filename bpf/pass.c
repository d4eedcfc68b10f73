//go:build ignore

/* pass: attached to the far end of a veth that our programs redirect or XDP_TX into. A veth
 * drops redirected frames unless its peer runs XDP (or GRO), so the testbed puts this there. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
