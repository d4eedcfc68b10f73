//go:build ignore

/* agent: XDP on the host side of each endpoint's veth, sees what the endpoint sends. Answers its
 * ARP, enforces its addresses, delivers to endpoints on this host, and Geneve-encapsulates the
 * rest toward the learned host or a bouncer of the endpoint's network. */

#include "agent.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int agent(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct host_cfg *cfg = get_cfg();
	__u32 ifindex = ctx->ingress_ifindex;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct port *port;
	struct endpoint *ep;
	struct agent_route rt;
	struct ep_key key;
	enum reason r;
	__u32 vni, frame_len, out;

	if (!cfg)
		return verdict(R_UNKNOWN_PORT, XDP_DROP);
	port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port || port->vni == 0)
		return verdict(R_UNKNOWN_PORT, XDP_DROP);
	if ((void *)(eth + 1) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	if (!mac_eq(eth->h_source, port->mac))
		return verdict(R_SPOOFED, XDP_DROP);
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		r = arp_answer(cfg, port, eth, data_end);
		return verdict(r, r == R_ARP_REPLIED ? XDP_TX : XDP_DROP);
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(R_NOT_IPV4, XDP_DROP);
	/* The whole frame, also when loaded as multi-buffer (xdp.frags): the headers are in the
	 * first buffer, the rest may not be. */
	frame_len = bpf_xdp_get_buff_len(ctx);
	iph = (void *)(eth + 1);
	r = agent_check_ipv4(port, iph, data_end, frame_len - sizeof(*eth));
	if (r != R_MAX)
		return verdict(r, XDP_DROP);

	vni = port->vni;
	ep = agent_lookup(cfg, port, eth, iph, &key, &out);
	if (out) {
		if (bpf_redirect(out, 0) != XDP_REDIRECT)
			return verdict(R_REDIRECT_FAILED, XDP_DROP);
		return verdict(R_SAME_HOST, XDP_REDIRECT);
	}

	if (bpf_ntohs(iph->tot_len) + OVERHEAD > cfg->mtu)
		return verdict(R_TOO_BIG, XDP_DROP);
	r = agent_route(cfg, port, &key, ep, iph, data_end, &rt);
	if (r != R_MAX)
		return verdict(r, XDP_DROP);

	if (bpf_xdp_adjust_head(ctx, -(int)ENCAP_LEN))
		return verdict(R_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ENCAP_LEN > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	write_encap(data, cfg, rt.mac, rt.dst, vni, rt.hash, frame_len, rt.flags);
	if (bpf_redirect(cfg->ifindex, 0) != XDP_REDIRECT)
		return verdict(R_REDIRECT_FAILED, XDP_DROP);
	return verdict(rt.r, XDP_REDIRECT);
}
