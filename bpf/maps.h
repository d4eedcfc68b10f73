/* Every map of the data plane. One collection is loaded per host; sizes are defaults that Go
 * overrides at load time (MapSpec.MaxEntries). */
#ifndef MIZAR_MAPS_H
#define MIZAR_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

/* This host's substrate settings: one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct host_cfg);
} host_config SEC(".maps");

/* Endpoints this host knows, hosted here or (as a bouncer) elsewhere: (VNI, IP) -> endpoint. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__type(key, struct ep_key);
	__type(value, struct endpoint);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} endpoints SEC(".maps");

/* The agent's view of each endpoint veth, indexed by the host-side ifindex: an array, because
 * every packet an endpoint sends starts here. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct port);
} ports SEC(".maps");

/* Networks this host knows: (VNI, CIDR) -> network and its bouncers. Dividers hold all of their VPC's, bouncers
 * their own, hosts those of their endpoints (to heal stale direct paths). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct net_key);
	__type(value, struct net_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} networks SEC(".maps");

/* Network slot -> the network's bouncers, for the agent (its port names the slot). Slots are
 * given out by the Go side. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct host_set);
} bouncer_sets SEC(".maps");

/* VNI -> this host's roles in the VPC and the VPC's dividers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct vpc_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vpcs SEC(".maps");

/* Substrate IPv4 -> the host as a hop, filled by Go: XDP cannot start ARP resolution, so a map
 * keeps forwarding deterministic and independent of the kernel's neighbor cache. Read only when
 * learning, which knows a host by the address in our option. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct hop);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} neighbors SEC(".maps");

/* Direct path: (VNI, inner source) -> the host that sent it, learned by transit, used by the
 * agent. LRU: a forgotten entry only costs a detour through the bouncer. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ep_key);
	__type(value, struct learned_host);
} learned SEC(".maps");

/* Per-CPU packet counter for every reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, enum reason);
	__type(value, __u64);
} stats SEC(".maps");

#endif
