/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weft transparent capture (capture.md approach C): a tc ingress program that only MARKS, and an
 * sk_lookup program that hands the marked SYNs to the agent's transparent listener from a SOCKMAP.
 *
 * weft_tc_ingress runs at clsact ingress of every pod's host-side veth and of the node's uplink
 * (Ethernet devices). For each IPv4 TCP packet, in this order:
 *   1. It already carries a Weft mark (steer or onward)            → pass untouched.
 *   2. IPv4 fragment: dropped if it comes from/goes to an enrolled IP (we cannot see its TCP header,
 *      so passing it could leak a new connection around the agent), otherwise passed.
 *   3. A SYN without ACK whose source is enrolled outbound (flag 1), or whose destination is enrolled
 *      inbound (flag 2), neither draining (flag 4): a new connection to capture.
 *        listener present in `listeners`  → steer mark; the kernel delivers it locally and sk_lookup
 *                                           picks the listener (so a TIME_WAIT for the same tuple is
 *                                           handled by the kernel's own TW → listener path).
 *        listener missing (agent down)    → FAIL CLOSED: answered with a RST (or dropped with
 *                                           WEFT_CFG_FAIL_DROP), never forwarded in plaintext.
 *   4. Any other packet whose tuple belongs to a node socket that is neither LISTEN nor TIME_WAIT (the
 *      client leg of a captured connection, a request socket mid-handshake, the reply to the agent's
 *      transparent onward socket) → steer mark, so routing delivers it locally instead of forwarding it.
 *   5. Everything else → pass untouched. In particular non-SYN packets of connections that were open
 *      before enrolment keep going direct, and SYNs of draining IPs go direct.
 * Outbound wins over inbound when both apply (the source's agent captures first).
 *
 * weft_sk_lookup runs in the node netns for every listener lookup. It makes the same capture decision
 * from the same maps (the context carries no mark) and assigns listeners[key]. A decided capture with
 * no listener returns SK_DROP: fail closed, never the node's own listener on that port.
 *
 * Limits: IPv4 and TCP only (IPv6 is neither captured nor blocked); Ethernet devices only (the IP header
 * is expected at offset 14); source addresses are trusted, so pod veths and the uplink need
 * rp_filter=1 (strict) to stop a pod or a remote host from spoofing an enrolled pod's IP.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "weft_capture.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Read by the loader (from BTF) to refuse an object built from another header. */
const volatile __u32 weft_layout_version = WEFT_LAYOUT_VERSION;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_ENROLLED_MAX);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} enrolled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, WEFT_LISTENERS_MAX);
	__type(key, __u32);
	__type(value, __u64); /* 8 bytes so that a lookup from userspace returns the socket cookie */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} listeners SEC(".maps");

/*
 * The tuple the tc program is probing with bpf_skc_lookup_tcp, per CPU. That helper runs the listener
 * lookup, and with it weft_sk_lookup, synchronously on this CPU: sk_lookup must not assign a listener
 * (nor count) for the tc program's own "is there an established socket?" probe.
 */
struct probe_tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 active;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_tuple);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} probe SEC(".maps");

#define NO_LISTENER (-1)

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		*value += 1;
}

static __always_inline __u32 enrol_flags(__u32 addr)
{
	__u32 *flags = bpf_map_lookup_elem(&enrolled, &addr);

	return flags ? *flags : 0;
}

struct settings {
	__u32 flags;
	__u32 steer;
	__u32 onward;
	__u32 mask;
	__u16 hbone_port;
};

static __always_inline void load_settings(struct settings *s)
{
	__u32 zero = 0;
	struct weft_config *cfg = bpf_map_lookup_elem(&config, &zero);

	s->flags = 0;
	s->steer = WEFT_MARK_STEER;
	s->onward = WEFT_MARK_ONWARD;
	s->mask = WEFT_MARK_MASK;
	s->hbone_port = WEFT_DEFAULT_HBONE_PORT;
	if (!cfg)
		return;
	s->flags = cfg->flags;
	if (cfg->steer_mark)
		s->steer = cfg->steer_mark;
	if (cfg->onward_mark)
		s->onward = cfg->onward_mark;
	if (cfg->mark_mask)
		s->mask = cfg->mark_mask;
	if (cfg->hbone_port)
		s->hbone_port = cfg->hbone_port;
}

/* The one capture decision, shared by both programs. dport in host byte order. */
static __always_inline int choose_listener(__u32 src_flags, __u32 dst_flags, __u16 dport, __u16 hbone_port)
{
	if ((src_flags & WEFT_ENROL_OUTBOUND) && !(src_flags & WEFT_ENROL_DRAIN))
		return WEFT_LISTENER_OUTBOUND;
	if ((dst_flags & WEFT_ENROL_INBOUND) && !(dst_flags & WEFT_ENROL_DRAIN))
		return dport == hbone_port ? WEFT_LISTENER_HBONE : WEFT_LISTENER_INBOUND;
	return NO_LISTENER;
}

static __always_inline int would_capture_ignoring_drain(__u32 src_flags, __u32 dst_flags)
{
	return (src_flags & WEFT_ENROL_OUTBOUND) || (dst_flags & WEFT_ENROL_INBOUND);
}

static __always_inline void steer(struct __sk_buff *skb, const struct settings *s)
{
	skb->mark = (skb->mark & ~s->mask) | s->steer;
}

#define ETH_OFF 0
#define IP_OFF (ETH_OFF + (int)sizeof(struct ethhdr))
#define TCP_FLAGS_WORD 12 /* offset of the 16-bit doff/flags word in the TCP header */
#define TCP_CSUM_OFF 16

/*
 * Turns the SYN in place into the RST|ACK a closed port would send, and bounces it out of the device it
 * came in on. TCP options and any SYN payload are left in place (a RST's options are ignored); the
 * checksum is updated incrementally (swapping addresses and ports does not change it).
 */
static __always_inline int reject_syn(struct __sk_buff *skb, const struct ethhdr *eth, const struct iphdr *ip,
				      const struct tcphdr *tcp, int tcp_off)
{
	struct ethhdr reth;
	__u32 addrs[2];
	__u16 ports[2];
	__u16 old_word, new_word;
	__u32 old_seq = tcp->seq, new_seq = 0;
	__u32 old_ack = tcp->ack_seq, new_ack;
	__u32 ip_len = bpf_ntohs(ip->tot_len);
	__u32 hdr_len = ip->ihl * 4 + tcp->doff * 4;
	__u32 payload = ip_len > hdr_len ? ip_len - hdr_len : 0;

	__builtin_memcpy(reth.h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(reth.h_source, eth->h_dest, ETH_ALEN);
	reth.h_proto = eth->h_proto;
	addrs[0] = ip->daddr;
	addrs[1] = ip->saddr;
	ports[0] = tcp->dest;
	ports[1] = tcp->source;
	new_ack = bpf_htonl(bpf_ntohl(tcp->seq) + 1 + payload);
	if (bpf_skb_load_bytes(skb, tcp_off + TCP_FLAGS_WORD, &old_word, sizeof(old_word)) < 0)
		return -1;
	/* Keep doff; flags = RST|ACK (network order: byte 13 of the header is the flags byte). */
	new_word = old_word;
	((__u8 *)&new_word)[1] = 0x14;

	if (bpf_skb_store_bytes(skb, ETH_OFF, &reth, sizeof(reth), 0) < 0 ||
	    bpf_skb_store_bytes(skb, IP_OFF + offsetof(struct iphdr, saddr), addrs, sizeof(addrs), 0) < 0 ||
	    bpf_skb_store_bytes(skb, tcp_off, ports, sizeof(ports), 0) < 0 ||
	    bpf_skb_store_bytes(skb, tcp_off + 4, &new_seq, sizeof(new_seq), 0) < 0 ||
	    bpf_skb_store_bytes(skb, tcp_off + 8, &new_ack, sizeof(new_ack), 0) < 0 ||
	    bpf_skb_store_bytes(skb, tcp_off + TCP_FLAGS_WORD, &new_word, sizeof(new_word), 0) < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, tcp_off + TCP_CSUM_OFF, old_seq, new_seq, 4) < 0 ||
	    bpf_l4_csum_replace(skb, tcp_off + TCP_CSUM_OFF, old_ack, new_ack, 4) < 0 ||
	    bpf_l4_csum_replace(skb, tcp_off + TCP_CSUM_OFF, old_word, new_word, 2) < 0)
		return -1;
	return bpf_redirect(skb->ifindex, 0);
}

/* Is the tuple owned by a node socket that must receive this packet (not LISTEN, not TIME_WAIT)? */
static __always_inline int node_socket_owns(struct __sk_buff *skb, const struct iphdr *ip, const struct tcphdr *tcp)
{
	struct bpf_sock_tuple tuple = {};
	struct probe_tuple *guard;
	struct bpf_sock *sk;
	__u32 zero = 0, state;

	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.daddr = ip->daddr;
	tuple.ipv4.sport = tcp->source;
	tuple.ipv4.dport = tcp->dest;

	guard = bpf_map_lookup_elem(&probe, &zero);
	if (guard) {
		guard->saddr = ip->saddr;
		guard->daddr = ip->daddr;
		guard->sport = tcp->source;
		guard->dport = tcp->dest;
		guard->active = 1;
	}
	sk = bpf_skc_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (guard)
		guard->active = 0;
	if (!sk)
		return 0;
	state = sk->state;
	bpf_sk_release(sk);
	return state != BPF_TCP_LISTEN && state != BPF_TCP_TIME_WAIT;
}

SEC("tc")
int weft_tc_ingress(struct __sk_buff *skb)
{
	struct settings s;
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
	__u32 src_flags, dst_flags, mark_bits;
	int tcp_off, key;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_OFF, &eth, sizeof(eth)) < 0 ||
	    bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)) < 0)
		return TC_ACT_OK;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	count(WEFT_STAT_SEEN);

	load_settings(&s);
	mark_bits = skb->mark & s.mask;
	if (mark_bits == s.steer || mark_bits == s.onward) {
		count(WEFT_STAT_SKIPPED_MARKED);
		return TC_ACT_OK;
	}

	src_flags = enrol_flags(ip.saddr);
	dst_flags = enrol_flags(ip.daddr);

	if (ip.frag_off & bpf_htons(0x3fff)) { /* MF or a fragment offset */
		if (src_flags || dst_flags) {
			count(WEFT_STAT_FRAGMENT_DROPPED);
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}

	tcp_off = IP_OFF + (ip.ihl & 0xf) * 4;
	if (bpf_skb_load_bytes(skb, tcp_off, &tcp, sizeof(tcp)) < 0)
		return TC_ACT_OK;

	if (tcp.syn && !tcp.ack && !tcp.rst) {
		key = choose_listener(src_flags, dst_flags, bpf_ntohs(tcp.dest), s.hbone_port);
		if (key != NO_LISTENER) {
			__u32 k = (__u32)key;
			struct bpf_sock *listener = bpf_map_lookup_elem(&listeners, &k);

			if (!listener) {
				/* Fail closed: the agent is down; never let the connection through in plaintext. */
				count(WEFT_STAT_NO_LISTENER);
				if (!(s.flags & WEFT_CFG_FAIL_DROP)) {
					int rc = reject_syn(skb, &eth, &ip, &tcp, tcp_off);

					if (rc == TC_ACT_REDIRECT) {
						count(WEFT_STAT_RESET_SENT);
						return TC_ACT_REDIRECT;
					}
				}
				return TC_ACT_SHOT;
			}
			bpf_sk_release(listener);
			steer(skb, &s);
			count(key == WEFT_LISTENER_OUTBOUND  ? WEFT_STAT_CAPTURED_OUT
			      : key == WEFT_LISTENER_HBONE ? WEFT_STAT_CAPTURED_HBONE
							   : WEFT_STAT_CAPTURED_IN);
			return TC_ACT_OK;
		}
	}

	if (node_socket_owns(skb, &ip, &tcp)) {
		steer(skb, &s);
		count(WEFT_STAT_ESTABLISHED);
		return TC_ACT_OK;
	}

	if (would_capture_ignoring_drain(src_flags, dst_flags))
		count(tcp.syn && !tcp.ack ? WEFT_STAT_PASSED_DRAINING : WEFT_STAT_PASSED_NONSYN);
	return TC_ACT_OK;
}

SEC("sk_lookup")
int weft_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct settings s;
	struct probe_tuple *guard;
	struct bpf_sock *listener;
	__u32 zero = 0, remote, local, k;
	__u16 local_port;
	int key, err;

	if (ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* Context fields cannot be map keys directly (verifier: "R2 type=ctx expected=fp"): copy first. */
	remote = ctx->remote_ip4;
	local = ctx->local_ip4;
	local_port = (__u16)ctx->local_port;

	guard = bpf_map_lookup_elem(&probe, &zero);
	if (guard && guard->active && guard->saddr == remote && guard->daddr == local &&
	    guard->sport == ctx->remote_port && bpf_ntohs(guard->dport) == local_port)
		return SK_PASS; /* the tc program's own established-socket probe */

	load_settings(&s);
	key = choose_listener(enrol_flags(remote), enrol_flags(local), local_port, s.hbone_port);
	if (key == NO_LISTENER)
		return SK_PASS;
	k = (__u32)key;
	listener = bpf_map_lookup_elem(&listeners, &k);
	if (!listener) {
		count(WEFT_STAT_LOOKUP_NO_LISTENER);
		return SK_DROP;
	}
	/*
	 * The slot's socket, never another of its SO_REUSEPORT group: while a restarted agent takes over, the
	 * old and new listeners share a group, and only the one published in the slot takes new connections.
	 */
	err = bpf_sk_assign(ctx, listener, BPF_SK_LOOKUP_F_NO_REUSEPORT);
	bpf_sk_release(listener);
	if (err) {
		count(WEFT_STAT_LOOKUP_FAILED);
		return SK_DROP;
	}
	count(WEFT_STAT_LOOKUP_ASSIGNED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Apache-2.0";
