//go:build ignore

/* agent_tc: the agent at tc ingress (tcx) of the host side of an endpoint's veth, on the skb
 * path. Same maps and decisions as agent.c; the difference is what it keeps: an XDP program on
 * a veth turns GSO off for what the peer sends, so the endpoint's TCP would hand us one MTU-sized
 * frame per segment. Here the endpoint keeps TSO: a GSO super-packet is encapsulated once with
 * bpf_skb_adjust_room, which marks it a UDP tunnel packet with an Ethernet inner header, and the
 * kernel segments it (or the NIC does) when it leaves the substrate interface. */

#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include "agent.h"

char LICENSE[] SEC("license") = "GPL";

/* Everything the agent reads: Ethernet, IPv4 with options, the TCP header (its length sizes a
 * GSO segment). ARP (42 bytes) fits too. */
#define AGENT_PULL (sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr))

/* The room bpf_skb_adjust_room opens after the Ethernet header, which becomes the outer one:
 * outer IPv4, UDP, Geneve and our option (ENCAP_LEN less the outer Ethernet header), and a copy
 * of the Ethernet header as the inner one: ENCAP_LEN in all. */
#define ROOM ENCAP_LEN

#define ENCAP_FLAGS (BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |            \
		     BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |            \
		     BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr)))

/* The longest IPv4 packet this skb becomes on the wire before encapsulation: itself, or for a
 * GSO super-packet, one segment (headers plus gso_size). */
static __always_inline __u32 wire_len(struct __sk_buff *skb, struct iphdr *iph, void *data_end)
{
	__u32 l4 = 0;

	if (skb->gso_size == 0)
		return bpf_ntohs(iph->tot_len);
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)iph + iph->ihl * 4;

		if ((void *)(th + 1) > data_end)
			return 0xffff; /* cannot size it: too big */
		l4 = th->doff * 4;
	} else if (iph->protocol == IPPROTO_UDP) {
		l4 = sizeof(struct udphdr);
	}
	return iph->ihl * 4 + l4 + skb->gso_size;
}

SEC("tcx/ingress")
int agent_tc(struct __sk_buff *skb)
{
	struct host_cfg *cfg = get_cfg();
	__u32 ifindex = skb->ifindex, pull = skb->len, vni, frame_len, out;
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct port *port;
	struct endpoint *ep;
	struct agent_route rt;
	struct ep_key key;
	enum reason r;
	/* Outer headers and the inner Ethernet header, stored in one write. The pad puts the
	 * outer IPv4 header on a 4-byte boundary: the verifier wants aligned stack access. */
	struct {
		__u16 pad;
		__u8 outer[ENCAP_LEN];
		struct ethhdr inner;
	} __attribute__((packed, aligned(4))) hdr;

	if (!cfg)
		return verdict(R_UNKNOWN_PORT, TC_ACT_SHOT);
	port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port || port->vni == 0)
		return verdict(R_UNKNOWN_PORT, TC_ACT_SHOT);
	/* The stack leaves headers linear, but nothing promises it. */
	if (pull > AGENT_PULL)
		pull = AGENT_PULL;
	if ((long)skb->data + pull > (long)skb->data_end && bpf_skb_pull_data(skb, pull))
		return verdict(R_MALFORMED, TC_ACT_SHOT);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return verdict(R_MALFORMED, TC_ACT_SHOT);
	if (!mac_eq(eth->h_source, port->mac))
		return verdict(R_SPOOFED, TC_ACT_SHOT);
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		r = arp_answer(cfg, port, eth, data_end);
		if (r != R_ARP_REPLIED)
			return verdict(r, TC_ACT_SHOT);
		/* Back out of the veth we are on: to the endpoint. */
		return verdict(r, bpf_redirect(ifindex, 0));
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(R_NOT_IPV4, TC_ACT_SHOT);
	iph = (void *)(eth + 1);
	r = agent_check_ipv4(port, iph, data_end, skb->len - sizeof(*eth));
	if (r != R_MAX)
		return verdict(r, TC_ACT_SHOT);

	vni = port->vni;
	ep = agent_lookup(cfg, port, eth, iph, &key, &out);
	if (out) /* out of the other endpoint's veth, still one super-packet */
		return verdict(R_SAME_HOST, bpf_redirect(out, 0));

	if (wire_len(skb, iph, data_end) + OVERHEAD > cfg->mtu)
		return verdict(R_TOO_BIG, TC_ACT_SHOT);
	r = agent_route(cfg, port, &key, ep, iph, data_end, &rt);
	if (r != R_MAX)
		return verdict(r, TC_ACT_SHOT);

	frame_len = skb->len;
	__builtin_memcpy(&hdr.inner, eth, sizeof(hdr.inner));
	/* A GSO super-packet's lengths are the segmenter's business: it rewrites them per
	 * segment. Ours only have to be right for a packet that goes out as it is. */
	write_encap(hdr.outer, cfg, rt.mac, rt.dst, vni, rt.hash, frame_len, rt.flags);
	/* The segments keep gso_size: the endpoint's MTU already leaves room for our headers. */
	if (bpf_skb_adjust_room(skb, ROOM, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS))
		return verdict(R_MALFORMED, TC_ACT_SHOT);
	if (bpf_skb_store_bytes(skb, 0, hdr.outer, ENCAP_LEN + sizeof(hdr.inner), 0))
		return verdict(R_MALFORMED, TC_ACT_SHOT);
	return verdict(rt.r, bpf_redirect(cfg->ifindex, 0));
}
