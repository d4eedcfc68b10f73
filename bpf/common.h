/* Header-only helpers shared by transit and agent: bounds-checked parsing, checksums, flow
 * hashing, Geneve encapsulation and the single exit that counts every verdict. */
#ifndef MIZAR_COMMON_H
#define MIZAR_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "types.h"
#include "maps.h"

#define GENEVE_PORT 6081
#define ETH_P_TEB 0x6558
#define MAX_GENEVE_OPTS 8

struct genevehdr {
	__u8 ver_optlen;  /* version (2 bits) | options length in 4-byte words (6 bits) */
	__u8 flags;       /* O (0x80) | C (0x40) */
	__be16 proto;
	__u8 vni[3];
	__u8 rsvd;
};

struct geneve_opt {
	__be16 class;
	__u8 type;       /* high bit: critical */
	__u8 length;     /* 3 reserved bits | data length in 4-byte words (5 bits) */
};

/* Our one option: the host that encapsulated the packet, for direct-path learning. */
struct mizar_opt {
	struct geneve_opt hdr;
	__be32 host;
	__u8 flags;
	__u8 pad[3];
};

struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

/* Outer headers the agent adds: Ethernet, IPv4, UDP, Geneve and our option. */
#define ENCAP_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + \
		   sizeof(struct genevehdr) + sizeof(struct mizar_opt))
/* What the outer IPv4 packet adds to the inner frame's IPv4 packet. */
#define OVERHEAD (ENCAP_LEN)

static __always_inline int verdict(enum reason r, int action)
{
	__u32 key = r;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += 1;
	return action;
}

static __always_inline void count(enum reason r)
{
	verdict(r, 0);
}

static __always_inline struct host_cfg *get_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&host_config, &zero);
}

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* Checksum of a 20-byte IPv4 header with its check field zero. */
static __always_inline __u16 ipv4_csum(struct iphdr *iph)
{
	__u16 *p = (__u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*iph) >> 1); i++)
		sum += p[i];
	return csum_fold(sum);
}

/* RFC 1624 incremental update of a 16-bit ones' complement checksum for a changed 32-bit word. */
static __always_inline void csum_replace4(__u16 *sum, __be32 from, __be32 to)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~(from & 0xffff);
	s += (__u16)~(from >> 16);
	s += to & 0xffff;
	s += to >> 16;
	*sum = csum_fold(s);
}

/* The ones' complement sum that turns a checksum over from into one over to (RFC 1624),
 * unfolded: add several and fold once. */
static __always_inline __u32 csum_diff4(__be32 from, __be32 to)
{
	return (__u16)~(from & 0xffff) + (__u16)~(from >> 16) + (to & 0xffff) + (to >> 16);
}

static __always_inline void csum_replace2(__u16 *sum, __be16 from, __be16 to)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~from;
	s += to;
	*sum = csum_fold(s);
}

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

/* Hash of the inner flow: addresses, protocol and, for TCP/UDP, ports. Every packet of a flow
 * hashes alike, so it takes one bouncer, one divider and one underlay path. */
static __always_inline __u32 flow_hash(struct iphdr *iph, void *data_end)
{
	__u32 h = mix32(iph->saddr ^ mix32(iph->daddr ^ iph->protocol));

	if ((iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) &&
	    !(iph->frag_off & bpf_htons(0x3fff)) && iph->ihl == 5) {
		__u32 *ports = (void *)(iph + 1);

		if ((void *)(ports + 1) <= data_end)
			h = mix32(h ^ *ports);
	}
	return h;
}

/* One of a set of hosts, chosen by flow hash. The mask only convinces the verifier: count is at
 * most MAX_BOUNCERS, a power of two, so hash % count is already below it; the empty asm keeps
 * clang from proving that and dropping the mask. */
static __always_inline struct hop *pick(struct host_set *set, __u32 hash)
{
	__u32 count = set->count, i;

	if (count == 0 || count > MAX_BOUNCERS)
		return NULL;
	i = hash % count;
	asm volatile("" : "+r"(i));
	return &set->hosts[i & (MAX_BOUNCERS - 1)];
}

static __always_inline __u32 vni_of(struct genevehdr *gh)
{
	return ((__u32)gh->vni[0] << 16) | ((__u32)gh->vni[1] << 8) | gh->vni[2];
}

/* The underlay MAC toward a hop: its own when known, else the default next hop of a routed
 * underlay. -1 when neither, or for an empty hop. */
static __always_inline int next_hop(struct host_cfg *cfg, const struct hop *h, __u8 *mac)
{
	if (h->ip == 0)
		return -1;
	if (h->flags & HOP_F_MAC) {
		mac_copy(mac, h->mac);
		return 0;
	}
	if (cfg->flags & CFG_F_DEFAULT_NH) {
		mac_copy(mac, cfg->nh_mac);
		return 0;
	}
	return -1;
}

/* Writes the outer Ethernet, IPv4, UDP, Geneve and option headers at data. inner_len is the
 * length of the inner Ethernet frame. */
static __always_inline void write_encap(void *data, struct host_cfg *cfg, const __u8 *dmac,
					__u32 dst, __u32 vni, __u32 hash, __u16 inner_len,
					__u8 flags)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp = (void *)(iph + 1);
	struct genevehdr *gh = (void *)(udp + 1);
	struct mizar_opt *opt = (void *)(gh + 1);
	__u16 udp_len = sizeof(*udp) + sizeof(*gh) + sizeof(*opt) + inner_len;

	mac_copy(eth->h_dest, dmac);
	mac_copy(eth->h_source, cfg->mac);
	eth->h_proto = bpf_htons(ETH_P_IP);

	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons(sizeof(*iph) + udp_len);
	iph->id = 0;
	iph->frag_off = bpf_htons(0x4000); /* DF: the underlay never fragments us */
	iph->ttl = 64;
	iph->protocol = IPPROTO_UDP;
	iph->saddr = cfg->ip;
	iph->daddr = dst;
	iph->check = 0;
	iph->check = ipv4_csum(iph);

	/* Ephemeral range, as RFC 8926 recommends for the entropy source port. */
	udp->source = bpf_htons(49152 | (hash & 0x3fff));
	udp->dest = bpf_htons(GENEVE_PORT);
	udp->len = bpf_htons(udp_len);
	udp->check = 0; /* allowed for Geneve over IPv4 */

	gh->ver_optlen = sizeof(*opt) / 4;
	gh->flags = 0;
	gh->proto = bpf_htons(ETH_P_TEB);
	gh->vni[0] = vni >> 16;
	gh->vni[1] = vni >> 8;
	gh->vni[2] = vni;
	gh->rsvd = 0;

	opt->hdr.class = bpf_htons(MIZAR_OPT_CLASS);
	opt->hdr.type = MIZAR_OPT_HOST;
	opt->hdr.length = (sizeof(*opt) - sizeof(opt->hdr)) / 4;
	opt->host = cfg->ip;
	opt->flags = flags;
	opt->pad[0] = opt->pad[1] = opt->pad[2] = 0;
}

#endif
