//go:build ignore

/* agent: XDP on the host side of each endpoint's veth, sees what the endpoint sends. Answers its
 * ARP, enforces its addresses, delivers to endpoints on this host, and Geneve-encapsulates the
 * rest toward the learned host or a bouncer of the endpoint's network. */

#include "common.h"

char LICENSE[] SEC("license") = "GPL";

/* Any address of the VPC resolves to the gateway MAC, so no ARP crosses the overlay. */
static __always_inline int arp_reply(struct host_cfg *cfg, struct port *port, struct ethhdr *eth,
				     void *data_end)
{
	struct arp_eth *arp = (void *)(eth + 1);
	__be32 target;

	if ((void *)(arp + 1) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4)
		return verdict(R_MALFORMED, XDP_DROP);
	if (!mac_eq(arp->sha, port->mac) || (arp->spa != port->ip && arp->spa != 0))
		return verdict(R_SPOOFED, XDP_DROP);
	target = arp->tpa;
	/* Requests only, for another VPC address (a probe for our own is duplicate detection). */
	if (arp->op != bpf_htons(1) || target == port->ip ||
	    (target & port->vpc_mask) != port->vpc_prefix)
		return verdict(R_ARP_IGNORED, XDP_DROP);

	arp->op = bpf_htons(2);
	mac_copy(arp->tha, arp->sha);
	arp->tpa = arp->spa;
	mac_copy(arp->sha, cfg->gw_mac);
	arp->spa = target;
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, cfg->gw_mac);
	return verdict(R_ARP_REPLIED, XDP_TX);
}

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
	struct learned_host *lh;
	struct host_set *set;
	struct hop *h;
	struct ep_key key;
	enum reason r;
	__u32 hash, vni, frame_len, ns, dst;
	__u8 mac[6], flags = 0;

	if (!cfg)
		return verdict(R_UNKNOWN_PORT, XDP_DROP);
	port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port || port->vni == 0)
		return verdict(R_UNKNOWN_PORT, XDP_DROP);
	if ((void *)(eth + 1) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	if (!mac_eq(eth->h_source, port->mac))
		return verdict(R_SPOOFED, XDP_DROP);
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return arp_reply(cfg, port, eth, data_end);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(R_NOT_IPV4, XDP_DROP);
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	if (iph->version != 4 || iph->ihl < 5 || (void *)iph + bpf_ntohs(iph->tot_len) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	if (iph->saddr != port->ip)
		return verdict(R_SPOOFED, XDP_DROP);

	vni = port->vni;
	key.vni = vni;
	key.ip = iph->daddr;
	ep = bpf_map_lookup_elem(&endpoints, &key);
	if (ep && ep->ifindex) {
		/* Same host: straight to the other veth, no trip through the bouncer. */
		__u32 out = ep->ifindex;

		mac_copy(eth->h_dest, ep->mac);
		mac_copy(eth->h_source, cfg->gw_mac);
		if (bpf_redirect(out, 0) != XDP_REDIRECT)
			return verdict(R_REDIRECT_FAILED, XDP_DROP);
		return verdict(R_SAME_HOST, XDP_REDIRECT);
	}

	frame_len = data_end - data;
	if (bpf_ntohs(iph->tot_len) + OVERHEAD > cfg->mtu)
		return verdict(R_TOO_BIG, XDP_DROP);
	hash = flow_hash(iph, data_end);

	if (ep) {
		/* We bounce for its network: we know its host, no need to ask ourselves. What we
		 * know is authoritative, so the receiver should learn from it (it may hold a stale
		 * path toward where the sender used to be). */
		h = &ep->host;
		r = R_ENCAP_BOUNCER;
		flags = MIZAR_F_LEARN;
	} else if (!(cfg->flags & CFG_F_NO_DIRECT) && (lh = bpf_map_lookup_elem(&learned, &key))) {
		h = &lh->host;
		r = R_DIRECT_HIT;
		/* The receiver may not know us yet (we learned it from a packet it sent through a
		 * bouncer): ask it to learn, on the first packets and now and then after. */
		if (lh->announce) {
			lh->announce--;
			flags = MIZAR_F_LEARN;
		} else if ((bpf_get_prandom_u32() & 255) == 0) {
			flags = MIZAR_F_LEARN;
		}
	} else {
		ns = port->net_slot;
		set = bpf_map_lookup_elem(&bouncer_sets, &ns);
		if (!set)
			return verdict(R_NO_BOUNCER, XDP_DROP);
		h = pick(set, hash);
		if (!h)
			return verdict(R_NO_BOUNCER, XDP_DROP);
		r = R_ENCAP_BOUNCER;
	}
	if (h->ip == cfg->ip) {
		/* We are the bouncer and do not know it: another network's, the dividers know. */
		struct vpc_info *vpc = bpf_map_lookup_elem(&vpcs, &vni);

		h = vpc ? pick(&vpc->dividers, hash) : NULL;
		if (!h || h->ip == cfg->ip)
			return verdict(R_UNKNOWN_DEST, XDP_DROP);
	}
	if (next_hop(cfg, h, mac))
		return verdict(R_NO_NEIGHBOR, XDP_DROP);

	dst = h->ip; /* h points into a map value; read it before the packet moves */
	if (bpf_xdp_adjust_head(ctx, -(int)ENCAP_LEN))
		return verdict(R_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ENCAP_LEN > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	write_encap(data, cfg, mac, dst, vni, hash, frame_len, flags);
	if (bpf_redirect(cfg->ifindex, 0) != XDP_REDIRECT)
		return verdict(R_REDIRECT_FAILED, XDP_DROP);
	return verdict(r, XDP_REDIRECT);
}
