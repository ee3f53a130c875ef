/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weft capture: the contract between the BPF programs (capture.bpf.c), the native addon (addon/src) and
 * the TypeScript encoders (maps.ts). Every layout, mark, key and counter index lives here once.
 *
 * Change a map's key/value layout, a flag's meaning or a counter's index → bump WEFT_LAYOUT_VERSION (and
 * LAYOUT_VERSION in maps.ts). The loader refuses to reuse pinned maps of another version; the agent pins
 * under /sys/fs/bpf/weft/v<version>/ so two versions never share a map by accident.
 *
 * Included by BPF C (clang -target bpf) and by userspace C (gcc); only <linux/types.h> is needed.
 */
#ifndef WEFT_CAPTURE_H
#define WEFT_CAPTURE_H

#include <linux/types.h>

#define WEFT_LAYOUT_VERSION 1

/*
 * Packet marks (skb->mark, SO_MARK). Weft owns the bits in WEFT_MARK_MASK (0xfff) and nothing else:
 *   - kube-proxy uses 0x4000 (masquerade) and 0x8000 (drop): outside the mask.
 *   - Calico uses the upper 16 bits by default: outside the mask.
 *   - Cilium puts a "magic" in 0x0f00 (0x200 to-proxy, 0x300, 0x400, 0x800..0xf00 proxy/host/encrypt/
 *     identity) and, with some magics, an identity or cluster id in the low byte. Our magic nibble is 0x5,
 *     with a low byte of 0xa1/0xaf.
 *   - Istio uses 0x539 and 0x111 (mask 0xfff): different values.
 * The tc program sets mark = (mark & ~mask) | steer, so foreign bits above 0xfff survive.
 *
 *   WEFT_MARK_STEER  set by the tc program on packets that must be delivered locally (new captured
 *                    connections and packets of connections whose socket lives on the node). Routed by:
 *                      ip rule add fwmark 0x5a1/0xfff lookup 1441 pref 1441
 *                      ip route add local 0.0.0.0/0 dev lo table 1441
 *   WEFT_MARK_ONWARD SO_MARK on the agent's own onward sockets (socketWithMark). It must NOT match the
 *                    steer rule (0x5af & 0xfff != 0x5a1), so onward traffic is routed normally; any hook that
 *                    sees it (tc, nftables) can tell the agent's traffic from a pod's and leave it alone.
 * Both marks are "ours": the tc program passes any packet already carrying either one untouched.
 */
#define WEFT_MARK_MASK 0xfffu
#define WEFT_MARK_STEER 0x5a1u
#define WEFT_MARK_ONWARD 0x5afu
#define WEFT_ROUTE_TABLE 1441
#define WEFT_RULE_PREF 1441

/* tc filter identity: one clsact ingress filter per device, replaced atomically on re-attach. */
#define WEFT_TC_HANDLE 0x5a1
#define WEFT_TC_PRIORITY 0x5a1

/* `enrolled` HASH: key = pod IPv4 address (network byte order, as on the wire), value = __u32 flags. */
#define WEFT_ENROL_OUTBOUND 0x1u /* capture new connections FROM this IP → listeners[OUTBOUND] */
#define WEFT_ENROL_INBOUND 0x2u  /* capture new connections TO this IP → listeners[INBOUND|HBONE] */
#define WEFT_ENROL_DRAIN 0x4u    /* keep steering packets of existing node sockets; capture nothing new */
#define WEFT_ENROLLED_MAX 8192

/* `listeners` SOCKMAP: key = __u32 index below; value = __u64: a socket fd on update, its cookie on read. */
#define WEFT_LISTENER_OUTBOUND 0 /* :15001 */
#define WEFT_LISTENER_INBOUND 1  /* :15006, plaintext */
#define WEFT_LISTENER_HBONE 2    /* :15008 */
#define WEFT_LISTENERS_MAX 4

/* `config` ARRAY, one entry (key 0). A zero field means "the default below". */
#define WEFT_CFG_FAIL_DROP 0x1u /* fail closed silently (drop the SYN) instead of answering with a RST */

struct weft_config {
	__u32 layout_version; /* written by the loader; a pinned map with another version is refused */
	__u32 flags;          /* WEFT_CFG_* */
	__u32 steer_mark;     /* default WEFT_MARK_STEER */
	__u32 onward_mark;    /* default WEFT_MARK_ONWARD; the programs only use it to skip our own packets */
	__u32 mark_mask;      /* default WEFT_MARK_MASK */
	__u16 outbound_port;  /* 15001: for the agent and debugging; the programs pick listeners by key */
	__u16 inbound_port;   /* 15006: idem */
	__u16 hbone_port;     /* default 15008: inbound SYNs to this port go to listeners[HBONE] */
	__u16 reserved;
};

#define WEFT_DEFAULT_OUTBOUND_PORT 15001
#define WEFT_DEFAULT_INBOUND_PORT 15006
#define WEFT_DEFAULT_HBONE_PORT 15008

/* `stats` PERCPU_ARRAY of __u64; sum over CPUs. Indices are part of the layout. */
enum weft_stat {
	WEFT_STAT_SEEN = 0,               /* tc: IPv4 TCP packets examined */
	WEFT_STAT_SKIPPED_MARKED = 1,     /* tc: already carried a Weft mark, passed untouched */
	WEFT_STAT_ESTABLISHED = 2,        /* tc: a node socket (not LISTEN/TIME_WAIT) owns the tuple: steered */
	WEFT_STAT_CAPTURED_OUT = 3,       /* tc: SYN from an outbound-enrolled IP steered to :15001 */
	WEFT_STAT_CAPTURED_IN = 4,        /* tc: SYN to an inbound-enrolled IP steered to :15006 */
	WEFT_STAT_CAPTURED_HBONE = 5,     /* tc: SYN to an inbound-enrolled IP's HBONE port steered to :15008 */
	WEFT_STAT_PASSED_NONSYN = 6,      /* tc: non-SYN of an enrolled IP with no node socket, passed */
	WEFT_STAT_PASSED_DRAINING = 7,    /* tc: SYN of a draining IP, passed direct */
	WEFT_STAT_NO_LISTENER = 8,        /* tc: SYN to capture but the listener is missing: not delivered */
	WEFT_STAT_RESET_SENT = 9,         /* tc: ... of which answered with a RST (fast refusal) */
	WEFT_STAT_FRAGMENT_DROPPED = 10,  /* tc: IPv4 fragment of TCP from/to an enrolled IP: dropped */
	WEFT_STAT_LOOKUP_ASSIGNED = 11,   /* sk_lookup: listener assigned */
	WEFT_STAT_LOOKUP_NO_LISTENER = 12, /* sk_lookup: listener missing (race with tc): SK_DROP */
	WEFT_STAT_LOOKUP_FAILED = 13,     /* sk_lookup: bpf_sk_assign failed: SK_DROP */
	WEFT_STAT_MAX = 16,
};

/* Pin names under the pin directory (maps are pinned by libbpf under their map name). */
#define WEFT_PIN_PROG_TC "prog_tc_ingress"
#define WEFT_PIN_PROG_SK_LOOKUP "prog_sk_lookup"
#define WEFT_PIN_LINK_SK_LOOKUP "link_sk_lookup"

#endif /* WEFT_CAPTURE_H */
