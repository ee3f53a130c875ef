// HTTP/2 and TLS settings of HBONE, in one place, with ztunnel's values and why.
import type { ClientSessionOptions, ServerOptions, Settings } from 'node:http2';

export const HBONE_PORT = 15008;

/** ztunnel: 4 MiB per stream lets one tunnel reach multi-Gbit/s over LAN RTTs. */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
/** 4× the stream window: an equal window can deadlock an app that reads stream B before stream A. */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** ztunnel sends 1 MiB frames; fewer frames per byte at bulk rates. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Header blocks: a CONNECT needs < 1 KiB; ztunnel's client allows 16 KiB, its server 64 KiB. */
export const CLIENT_MAX_HEADER_LIST_BYTES = 16 * 1024;
export const SERVER_MAX_HEADER_LIST_BYTES = 64 * 1024;
/** The server advertises 200 streams (ztunnel); the pool itself opens at most 100 per connection. */
export const SERVER_MAX_CONCURRENT_STREAMS = 200;
export const POOL_MAX_STREAMS_PER_CONNECTION = 100;
/**
 * Keepalive, both ends (ztunnel's do_ping_pong): PING after 10 s, then every 10 s; drop the connection
 * after 20 s without an answer.
 */
export const PING_INTERVAL_MS = 10_000;
export const PING_TIMEOUT_MS = 20_000;
/**
 * Client side: a PING unanswered this long makes a pooled connection unresponsive (not yet dead): it
 * takes no new streams, and CONNECTs waiting on it are asked again on another connection. A lost PING or
 * answer is retransmitted twice within it at Linux's 200 ms minimum RTO (0.2 + 0.4 s) on a LAN. Why it
 * matters (test/lab/network-faults.test.ts): after a 7 s outage the old connection sat in TCP
 * retransmission backoff ~6 s more, and the first new stream after it waited 6.0 s; with this, 1.2 s.
 */
export const PING_SUSPECT_MS = 1_000;
/**
 * Streams the peer may reset while the server still dials their upstream before the connection is
 * closed (rapid reset, CVE-2023-44487): h2's max_pending_accept_reset_streams default, which ztunnel's
 * server inherits. nghttp2's own limit only sends GOAWAY after ~1000, i.e. ~1000 upstream dials.
 */
export const MAX_PENDING_RESET_STREAMS = 20;
/** Unused pooled connections are closed after ztunnel's POOL_UNUSED_RELEASE_TIMEOUT. */
export const POOL_IDLE_TIMEOUT_MS = 5 * 60_000;
/** A TCP+TLS+H2 connect to a peer agent; ztunnel's CONNECTION_TIMEOUT. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** A TLS handshake that has not finished by then is dropped (slowloris at the TLS layer). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * Bound on what one H2 session may buffer (Node's maxSessionMemory is in MiB): stream windows are
 * 4 MiB, so 64 MiB covers 16 busy streams' worth of outstanding data before new streams are refused.
 */
export const MAX_SESSION_MEMORY_MIB = 64;

/** TLS 1.3 with the AES-GCM suites only, as ztunnel. */
export const TLS_MIN_VERSION = 'TLSv1.3' as const;
export const TLS_CIPHERSUITES = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';
export const ALPN_H2 = 'h2';

const COMMON_SETTINGS: Settings = {
  initialWindowSize: STREAM_WINDOW_BYTES,
  maxFrameSize: MAX_FRAME_BYTES,
  enablePush: false,
};

export const SERVER_SETTINGS: Settings = {
  ...COMMON_SETTINGS,
  maxConcurrentStreams: SERVER_MAX_CONCURRENT_STREAMS,
  maxHeaderListSize: SERVER_MAX_HEADER_LIST_BYTES,
  enableConnectProtocol: false,
};

export const CLIENT_SETTINGS: Settings = {
  ...COMMON_SETTINGS,
  maxHeaderListSize: CLIENT_MAX_HEADER_LIST_BYTES,
};

export const SERVER_SESSION_OPTIONS: ServerOptions = {
  settings: SERVER_SETTINGS,
  maxSessionMemory: MAX_SESSION_MEMORY_MIB,
  maxHeaderListPairs: 64,
  peerMaxConcurrentStreams: SERVER_MAX_CONCURRENT_STREAMS,
  // Node's defaults allow unbounded invalid frames / rapid resets per session; 1000 then close.
  maxSessionInvalidFrames: 1000,
  maxSessionRejectedStreams: 100,
  unknownProtocolTimeout: HANDSHAKE_TIMEOUT_MS,
};

export const CLIENT_SESSION_OPTIONS: ClientSessionOptions = {
  settings: CLIENT_SETTINGS,
  maxSessionMemory: MAX_SESSION_MEMORY_MIB,
  maxHeaderListPairs: 64,
};
