/* Structs shared between the BPF programs and Go. Exported to Go by bpf2go -type. */
#ifndef MIZAR_TYPES_H
#define MIZAR_TYPES_H

#include <linux/types.h>

#define MAX_BOUNCERS 16
#define MAX_DIVIDERS 16

/* Geneve option class from the experimental range (0xFF00-0xFFFF, RFC 8926 section 8). */
#define MIZAR_OPT_CLASS 0xFF6D
/* Option type: the sending host. Not critical (high bit clear): any receiver may ignore it. */
#define MIZAR_OPT_HOST 0x01

/* Option flags. */
#define MIZAR_F_DIVIDED 0x01 /* a divider already chose this packet's bouncer */
#define MIZAR_F_LEARN 0x02   /* sent straight, but the receiver may not know us yet: learn */

/* Direct packets that carry MIZAR_F_LEARN after the sender learned the receiver. */
#define LEARN_ANNOUNCE 8

/* Roles of this host within a VPC, bits of vpc_info.roles. */
#define ROLE_DIVIDER 0x01
#define ROLE_BOUNCER 0x02

/* Per-host settings, the single entry of the host_cfg array. */
struct host_cfg {
	__u32 ip;        /* substrate IPv4, network order */
	__u32 ifindex;   /* substrate interface */
	__u16 mtu;       /* substrate MTU */
	__u16 flags;     /* CFG_F_* */
	__u8 mac[6];     /* substrate interface MAC */
	__u8 gw_mac[6];  /* MAC the agent answers endpoints' ARP with */
	__u8 nh_mac[6];  /* default underlay next hop (a router), if CFG_F_DEFAULT_NH */
	__u16 pad;
};

/* The underlay is routed: a host without a MAC of its own in hosts[] is reached via nh_mac. */
#define CFG_F_DEFAULT_NH 0x01
/* The agent ignores learned paths: every packet goes through a bouncer (to measure that path). */
#define CFG_F_NO_DIRECT 0x02

/* Key of every (VNI, inner IPv4) map. */
struct ep_key {
	__u32 vni;
	__u32 ip; /* network order */
};

#define HOP_F_MAC 0x01 /* mac is the next hop toward the host */

/* A host of the underlay as every table that names one stores it: its address and the
 * underlay MAC toward it, copied in so that forwarding reads no other table. (Each extra table
 * is one more cache and TLB miss per packet.) The Go side rewrites the copies when a host's
 * next hop changes, which is rare. Without HOP_F_MAC, a routed underlay's default next hop. */
struct hop {
	__u32 ip;
	__u8 mac[6];
	__u8 flags; /* HOP_F_* */
	__u8 pad;
};

/* An endpoint this host knows: hosted here (ifindex set), or, on a bouncer, where it lives.
 * One table for both so that each transit packet costs one hash lookup to decide. */
struct endpoint {
	__u32 ifindex;   /* host side of the endpoint's veth; 0: not hosted here */
	__u8 mac[6];     /* the endpoint's MAC (hosted here) */
	__u16 pad;
	struct hop host; /* the endpoint's host (bouncer entries) */
};

/* What the agent knows of the endpoint behind one veth: ports[] is indexed by ifindex. */
struct port {
	__u32 vni;      /* 0: no endpoint on this ifindex */
	__u32 ip;
	__u32 net_slot; /* bouncer_sets[] index of the endpoint's network */
	__u32 vpc_prefix; /* VPC CIDR, network order, for answering ARP */
	__u32 vpc_mask;
	__u8 mac[6];
	__u16 pad;
};

/* LPM key over (VNI, inner IPv4). prefixlen counts the 32 VNI bits too. */
struct net_key {
	__u32 prefixlen;
	__u32 vni; /* network order so the trie matches VNI first */
	__u32 ip;
};

/* A set of hosts: a network's bouncers, a VPC's dividers. */
struct host_set {
	__u32 count;
	struct hop hosts[MAX_BOUNCERS];
};

#define NET_F_BOUNCER 0x01 /* this host is a bouncer of the network */
#define NET_F_DIVIDER 0x02 /* this host is a divider of the network's VPC */

/* A network as transit matches it, with its bouncers in the value: a divider's whole decision
 * is this one lookup. */
struct net_info {
	__u32 flags; /* NET_F_* */
	struct host_set bouncers;
};

struct vpc_info {
	__u32 roles;
	struct host_set dividers;
};

/* What the direct path learned: the host an endpoint's packets came from. */
struct learned_host {
	struct hop host;
	__u32 announce; /* direct packets still to send with MIZAR_F_LEARN */
};

/* Verdict reasons, the index of the stats array. Keep in step with dataplane/counters.go. */
enum reason {
	R_PASS = 0,         /* not ours: to the kernel */
	R_DELIVERED,        /* decapsulated to a local endpoint */
	R_BOUNCED,          /* bouncer sent it to the endpoint's host */
	R_DIVIDED,          /* divider sent it to the destination network's bouncer */
	R_TO_DIVIDER,       /* bouncer did not know it, sent it to a divider */
	R_REROUTED,         /* stale direct path healed: sent on to the bouncer */
	R_ARP_REPLIED,      /* agent answered an endpoint's ARP */
	R_ENCAP_BOUNCER,    /* agent encapsulated toward a bouncer */
	R_DIRECT_HIT,       /* agent encapsulated straight to the learned host */
	R_SAME_HOST,        /* agent delivered to an endpoint on this host */
	R_LEARNED,          /* transit learned (VNI, inner src) -> host */
	R_SPOOFED,          /* source IP or MAC not the endpoint's */
	R_UNKNOWN_DEST,     /* nobody here knows the destination */
	R_UNKNOWN_PORT,     /* agent on a veth with no endpoint programmed */
	R_NO_BOUNCER,       /* network has no bouncer */
	R_NO_NEIGHBOR,      /* no underlay next hop for the target host */
	R_MALFORMED,        /* truncated or invalid headers */
	R_BAD_VERSION,      /* Geneve version not 0 */
	R_CRITICAL_OPTION,  /* unknown critical Geneve option */
	R_TTL_EXPIRED,      /* outer TTL would reach 0 */
	R_TOO_BIG,          /* encapsulated packet exceeds the substrate MTU */
	R_NOT_IPV4,         /* inner frame neither IPv4 nor ARP */
	R_ARP_IGNORED,      /* ARP that is not a request for a VPC address */
	R_REDIRECT_FAILED,  /* bpf_redirect refused */
	R_MAX,
};

#endif
