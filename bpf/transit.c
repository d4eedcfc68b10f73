//go:build ignore

/* transit: XDP on a host's substrate interface. Sees every packet that arrives at the host and
 * decides, from map contents alone, whether this host delivers it (local endpoint), bounces it
 * (bouncer of the destination's network), divides it (divider of the VPC), heals a stale
 * direct path, or leaves it to the kernel. */

#include "common.h"

char LICENSE[] SEC("license") = "GPL";

struct parsed {
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udp;
	struct mizar_opt *opt; /* NULL when the sender put none */
	struct ethhdr *inner_eth;
	struct iphdr *inner;
	__u32 vni;
};

/* Rewrites the outer header toward target and sends the packet back out of the substrate. */
static __always_inline int forward(struct host_cfg *cfg, struct parsed *p, struct hop *h,
				   __u8 set_flags, enum reason r)
{
	struct iphdr *iph = p->iph;
	struct udphdr *udp = p->udp;
	__u8 mac[6];
	__be16 old_ttl, new_ttl;
	__u32 target, addr_diff;

	if (!h)
		return verdict(R_NO_BOUNCER, XDP_DROP);
	if (iph->ttl <= 1)
		return verdict(R_TTL_EXPIRED, XDP_DROP);
	if (next_hop(cfg, h, mac))
		return verdict(R_NO_NEIGHBOR, XDP_DROP);
	target = h->ip;
	if (target == cfg->ip)
		return verdict(R_UNKNOWN_DEST, XDP_DROP); /* never to ourselves */

	mac_copy(p->eth->h_dest, mac);
	mac_copy(p->eth->h_source, cfg->mac);

	/* One RFC 1624 update for the addresses (shared by the IPv4 and UDP checksums), and the
	 * TTL on top for IPv4. */
	old_ttl = *(__be16 *)&iph->ttl;
	iph->ttl--;
	new_ttl = *(__be16 *)&iph->ttl;
	addr_diff = csum_diff4(iph->saddr, cfg->ip) + csum_diff4(iph->daddr, target);
	iph->check = csum_fold((__u16)~iph->check + addr_diff + (__u16)~old_ttl + new_ttl);
	if (udp->check) {
		udp->check = csum_fold((__u16)~udp->check + addr_diff);
		if (udp->check == 0)
			udp->check = 0xffff; /* 0 would mean "no checksum" */
	}
	iph->saddr = cfg->ip;
	iph->daddr = target;

	if (set_flags && p->opt) {
		__be16 *word = (__be16 *)&p->opt->flags;
		__be16 old = *word;

		p->opt->flags |= set_flags;
		if (udp->check) {
			csum_replace2(&udp->check, old, *word);
			if (udp->check == 0)
				udp->check = 0xffff;
		}
	}
	return verdict(r, XDP_TX);
}

/* Direct path: remember which host this source lives on, so our agent can skip the bouncer.
 * What came through a bouncer always pays for the lookup. What came straight from its sender
 * (outer source is the option's host) only does when the sender asks (MIZAR_F_LEARN): it does so
 * for its first packets after learning us, and now and then after, so the common case costs
 * nothing here. Writes happen only on change. */
static __always_inline void learn(struct host_cfg *cfg, struct parsed *p)
{
	struct ep_key k;
	struct learned_host *cur, v = {};
	struct hop *hop;
	__u32 host;

	if (!p->opt)
		return;
	host = p->opt->host;
	if (host == cfg->ip || host == 0)
		return;
	if (p->iph->saddr == host && !(p->opt->flags & MIZAR_F_LEARN))
		return;
	k.vni = p->vni;
	k.ip = p->inner->saddr;
	cur = bpf_map_lookup_elem(&learned, &k);
	if (cur && cur->host.ip == host)
		return;
	hop = bpf_map_lookup_elem(&neighbors, &host);
	if (!hop)
		return; /* a host we cannot reach directly: keep using the bouncer */
	v.host = *hop;
	v.announce = LEARN_ANNOUNCE;
	bpf_map_update_elem(&learned, &k, &v, BPF_ANY);
	count(R_LEARNED);
}

static __always_inline int deliver(struct xdp_md *ctx, struct host_cfg *cfg, struct parsed *p,
				   struct endpoint *ep)
{
	__u32 ifindex = ep->ifindex;
	__u8 mac[6];
	void *data, *data_end;
	struct ethhdr *eth;
	int outer;

	mac_copy(mac, ep->mac);
	learn(cfg, p);
	outer = (void *)p->inner_eth - (void *)p->eth;
	if (bpf_xdp_adjust_head(ctx, outer))
		return verdict(R_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return verdict(R_MALFORMED, XDP_DROP);
	mac_copy(eth->h_dest, mac);
	mac_copy(eth->h_source, cfg->gw_mac);
	if (bpf_redirect(ifindex, 0) != XDP_REDIRECT)
		return verdict(R_REDIRECT_FAILED, XDP_DROP);
	return verdict(R_DELIVERED, XDP_REDIRECT);
}

/* Parses outer Ethernet / IPv4 / UDP 6081 / Geneve with its options, and the inner Ethernet /
 * IPv4. Returns -1 when the packet is not Geneve for this host (to the kernel), or the reason
 * to drop it. */
static __always_inline int parse(struct xdp_md *ctx, struct host_cfg *cfg, struct parsed *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr *udp;
	struct genevehdr *gh;
	__u8 *opts;
	__u32 optlen, off = 0;
	/* The whole frame: loaded as multi-buffer (xdp.frags), data_end ends the first buffer
	 * only, which still holds every header we read. */
	__u32 len = bpf_xdp_get_buff_len(ctx);

	if ((void *)(eth + 1) > data_end)
		return R_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return R_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return R_MALFORMED;
	if (iph->daddr != cfg->ip || iph->protocol != IPPROTO_UDP)
		return -1;
	/* The frame may carry padding past the packet, never less than the packet. */
	if ((void *)iph - data + bpf_ntohs(iph->tot_len) > len)
		return R_MALFORMED;
	udp = (void *)iph + (iph->ihl * 4);
	if ((void *)(udp + 1) > data_end)
		return R_MALFORMED;
	if (udp->dest != bpf_htons(GENEVE_PORT))
		return -1;
	/* A fragment of a Geneve packet: we never send any (DF), and cannot decide on a piece. */
	if (iph->frag_off & bpf_htons(0x3fff))
		return R_MALFORMED;
	gh = (void *)(udp + 1);
	if ((void *)(gh + 1) > data_end)
		return R_MALFORMED;
	if (gh->ver_optlen >> 6)
		return R_BAD_VERSION;
	if (gh->proto != bpf_htons(ETH_P_TEB))
		return R_NOT_IPV4;

	p->opt = NULL;
	optlen = (gh->ver_optlen & 0x3f) * 4;
	opts = (void *)(gh + 1);
	/* What our agents send: exactly our option. Checked first so it skips the walk. */
	if (optlen == sizeof(struct mizar_opt)) {
		struct mizar_opt *m = (void *)opts;

		if ((void *)(m + 1) > data_end)
			return R_MALFORMED;
		if (m->hdr.class == bpf_htons(MIZAR_OPT_CLASS) && m->hdr.type == MIZAR_OPT_HOST &&
		    m->hdr.length == 2) {
			p->opt = m;
			off = optlen;
		}
	}
	for (int i = 0; i < MAX_GENEVE_OPTS; i++) {
		struct geneve_opt *o;
		__u32 len;

		if (off >= optlen)
			break;
		o = (void *)(opts + (off & 0xff));
		if ((void *)(o + 1) > data_end)
			return R_MALFORMED;
		len = sizeof(*o) + (o->length & 0x1f) * 4;
		if (off + len > optlen)
			return R_MALFORMED;
		if (o->class == bpf_htons(MIZAR_OPT_CLASS) && o->type == MIZAR_OPT_HOST &&
		    len >= sizeof(struct mizar_opt)) {
			struct mizar_opt *m = (void *)o;

			if ((void *)(m + 1) > data_end)
				return R_MALFORMED;
			p->opt = m;
		} else if (o->type & 0x80) {
			/* RFC 8926 3.5: a receiver that does not understand a critical option
			 * must drop the packet. */
			return R_CRITICAL_OPTION;
		}
		off += len;
	}
	if (off != optlen)
		return R_MALFORMED; /* more options than we walk */

	p->inner_eth = (void *)(opts + (optlen & 0xff));
	if ((void *)(p->inner_eth + 1) > data_end)
		return R_MALFORMED;
	if (p->inner_eth->h_proto != bpf_htons(ETH_P_IP))
		return R_NOT_IPV4;
	p->inner = (void *)(p->inner_eth + 1);
	if ((void *)(p->inner + 1) > data_end)
		return R_MALFORMED;
	if (p->inner->version != 4 || p->inner->ihl < 5 ||
	    (void *)p->inner - data + bpf_ntohs(p->inner->tot_len) > len)
		return R_MALFORMED;

	p->eth = eth;
	p->iph = iph;
	p->udp = udp;
	p->vni = vni_of(gh);
	return R_MAX;
}

SEC("xdp")
int transit(struct xdp_md *ctx)
{
	struct host_cfg *cfg = get_cfg();
	struct parsed p;
	struct ep_key key;
	struct endpoint *ep;
	struct net_info *net;
	struct vpc_info *vpc;
	struct net_key nk;
	__u32 hash;
	int r;

	if (!cfg || cfg->ip == 0)
		return verdict(R_PASS, XDP_PASS);
	r = parse(ctx, cfg, &p);
	if (r < 0)
		return verdict(R_PASS, XDP_PASS);
	if (r != R_MAX)
		return verdict(r, XDP_DROP);

	key.vni = p.vni;
	key.ip = p.inner->daddr;
	ep = bpf_map_lookup_elem(&endpoints, &key);
	if (ep) {
		if (ep->ifindex)
			return deliver(ctx, cfg, &p, ep);
		return forward(cfg, &p, &ep->host, 0, R_BOUNCED);
	}

	hash = flow_hash(p.inner, (void *)(long)ctx->data_end);
	nk.prefixlen = 64;
	nk.vni = bpf_htonl(p.vni);
	nk.ip = p.inner->daddr;
	net = bpf_map_lookup_elem(&networks, &nk);
	if (net) {
		struct hop *h;

		/* Our own network and the table does not have it: nobody has it. */
		if (net->flags & NET_F_BOUNCER)
			return verdict(R_UNKNOWN_DEST, XDP_DROP);
		h = pick(&net->bouncers, hash);
		if (net->flags & NET_F_DIVIDER)
			return forward(cfg, &p, h, MIZAR_F_DIVIDED, R_DIVIDED);
		/* An endpoint we no longer host, reached by a stale direct path: send it on to its
		 * bouncer instead of dropping it. */
		return forward(cfg, &p, h, 0, R_REROUTED);
	}

	/* A bouncer that does not know the destination: it may live in another network of the
	 * VPC, which the dividers know. Never back to a divider that already chose us. */
	vpc = bpf_map_lookup_elem(&vpcs, &p.vni);
	if (vpc && (vpc->roles & ROLE_BOUNCER) && !(vpc->roles & ROLE_DIVIDER) &&
	    !(p.opt && (p.opt->flags & MIZAR_F_DIVIDED))) {
		struct hop *h = pick(&vpc->dividers, hash);

		if (h)
			return forward(cfg, &p, h, 0, R_TO_DIVIDER);
	}
	return verdict(R_UNKNOWN_DEST, XDP_DROP);
}
