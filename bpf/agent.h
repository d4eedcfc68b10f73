/* The agent's decisions, shared by its two attach points: XDP (agent.c, on an xdp_md) and tc
 * (agent_tc.c, on an __sk_buff). Both see the same bytes in a linear buffer, so each decision is
 * written once here and each program only applies the verdict its hook knows. */
#ifndef MIZAR_AGENT_H
#define MIZAR_AGENT_H

#include "common.h"

/* Checks an endpoint's ARP and, when it asks for another VPC address, turns it into the reply
 * in place: any address of the VPC resolves to the gateway MAC, so no ARP crosses the overlay.
 * R_ARP_REPLIED means send the frame back to the endpoint; anything else is a drop. */
static __always_inline enum reason arp_answer(struct host_cfg *cfg, struct port *port,
					      struct ethhdr *eth, void *data_end)
{
	struct arp_eth *arp = (void *)(eth + 1);
	__be32 target;

	if ((void *)(arp + 1) > data_end)
		return R_MALFORMED;
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4)
		return R_MALFORMED;
	if (!mac_eq(arp->sha, port->mac) || (arp->spa != port->ip && arp->spa != 0))
		return R_SPOOFED;
	target = arp->tpa;
	/* Requests only, for another VPC address (a probe for our own is duplicate detection). */
	if (arp->op != bpf_htons(1) || target == port->ip ||
	    (target & port->vpc_mask) != port->vpc_prefix)
		return R_ARP_IGNORED;

	arp->op = bpf_htons(2);
	mac_copy(arp->tha, arp->sha);
	arp->tpa = arp->spa;
	mac_copy(arp->sha, cfg->gw_mac);
	arp->spa = target;
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, cfg->gw_mac);
	return R_ARP_REPLIED;
}

/* Checks the IPv4 header at iph: well formed, no longer than the l3_len bytes that follow the
 * Ethernet header, and sent from the endpoint's own address. R_MAX when it is. */
static __always_inline enum reason agent_check_ipv4(struct port *port, struct iphdr *iph,
						    void *data_end, __u32 l3_len)
{
	if ((void *)(iph + 1) > data_end)
		return R_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5 || bpf_ntohs(iph->tot_len) > l3_len)
		return R_MALFORMED;
	if (iph->saddr != port->ip)
		return R_SPOOFED;
	return R_MAX;
}

/* Looks up the destination of port's packet at iph (filling key). When it is an endpoint of
 * this host, the frame is readied for its veth (MACs) and *out is that veth; else *out is 0
 * and the endpoints entry, if any, is returned for agent_route. */
static __always_inline struct endpoint *agent_lookup(struct host_cfg *cfg, struct port *port,
						     struct ethhdr *eth, struct iphdr *iph,
						     struct ep_key *key, __u32 *out)
{
	struct endpoint *ep;

	key->vni = port->vni;
	key->ip = iph->daddr;
	*out = 0;
	ep = bpf_map_lookup_elem(&endpoints, key);
	if (ep && ep->ifindex) {
		/* Same host: straight to the other veth, no trip through the bouncer. */
		*out = ep->ifindex;
		mac_copy(eth->h_dest, ep->mac);
		mac_copy(eth->h_source, cfg->gw_mac);
	}
	return ep;
}

/* Where the agent sends an endpoint's IPv4 packet that does not stay on this host. */
struct agent_route {
	__u32 dst;    /* substrate address of the next host */
	__u8 mac[6];  /* underlay MAC toward it */
	__u8 flags;   /* MIZAR_F_* for our option */
	__u32 hash;   /* inner flow hash, for the outer source port */
	enum reason r;
};

/* Chooses the next host for a packet of port's endpoint to key.ip: the endpoint's host when we
 * bounce for its network, the learned host (direct path), else a bouncer of the network, or a
 * divider when we are that bouncer and do not know the destination. ep is the endpoints entry
 * for the destination (NULL when none, never one hosted here). Returns R_MAX when rt is set,
 * else the reason to drop. */
static __always_inline enum reason agent_route(struct host_cfg *cfg, struct port *port,
					       struct ep_key *key, struct endpoint *ep,
					       struct iphdr *iph, void *data_end,
					       struct agent_route *rt)
{
	struct learned_host *lh;
	struct host_set *set;
	struct hop *h;
	__u32 ns, vni = key->vni;

	rt->flags = 0;
	rt->hash = flow_hash(iph, data_end);
	if (ep) {
		/* We bounce for its network: we know its host, no need to ask ourselves. What we
		 * know is authoritative, so the receiver should learn from it (it may hold a stale
		 * path toward where the sender used to be). */
		h = &ep->host;
		rt->r = R_ENCAP_BOUNCER;
		rt->flags = MIZAR_F_LEARN;
	} else if (!(cfg->flags & CFG_F_NO_DIRECT) && (lh = bpf_map_lookup_elem(&learned, key))) {
		h = &lh->host;
		rt->r = R_DIRECT_HIT;
		/* The receiver may not know us yet (we learned it from a packet it sent through a
		 * bouncer): ask it to learn, on the first packets and now and then after. */
		if (lh->announce) {
			lh->announce--;
			rt->flags = MIZAR_F_LEARN;
		} else if ((bpf_get_prandom_u32() & 255) == 0) {
			rt->flags = MIZAR_F_LEARN;
		}
	} else {
		ns = port->net_slot;
		set = bpf_map_lookup_elem(&bouncer_sets, &ns);
		if (!set)
			return R_NO_BOUNCER;
		h = pick(set, rt->hash);
		if (!h)
			return R_NO_BOUNCER;
		rt->r = R_ENCAP_BOUNCER;
	}
	if (h->ip == cfg->ip) {
		/* We are the bouncer and do not know it: another network's, the dividers know. */
		struct vpc_info *vpc = bpf_map_lookup_elem(&vpcs, &vni);

		h = vpc ? pick(&vpc->dividers, rt->hash) : NULL;
		if (!h || h->ip == cfg->ip)
			return R_UNKNOWN_DEST;
	}
	if (next_hop(cfg, h, rt->mac))
		return R_NO_NEIGHBOR;
	rt->dst = h->ip; /* h points into a map value; copied before the packet moves */
	return R_MAX;
}

#endif
