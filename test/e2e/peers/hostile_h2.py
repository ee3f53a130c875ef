"""A hostile HBONE client: a valid mTLS handshake (CA-issued client certificate), then HTTP/2 that is
malformed, oversized or abusive, per MODE. Reports what the server did as one JSON line: statuses and
resets per stream, GOAWAY, whether and how the connection closed, and how much was sent before that.

Usage: hostile_h2.py MODE TARGET_IP:PORT ROOT_PEM CERT_PEM KEY_PEM AUTHORITY [COUNT] [LINGER_S]

With LINGER_S, the connection is then kept (never closed from this side, nothing more sent) for up to
LINGER_S, and a second line {"phase": "closed", "closed_after": seconds since connecting, or null}
tells when the server closed it. A server must close the TCP connection after a GOAWAY for a
connection error (RFC 9113 §5.4.1); a peer that does not is exactly who this tests.

Modes (every loop is bounded by COUNT, every wait by a timeout):
  garbage-preface      bytes that are not the connection preface
  settings-length      a SETTINGS frame whose length is not a multiple of 6
  frame-too-large      a frame header announcing 16 MiB - 1, beyond any SETTINGS_MAX_FRAME_SIZE
  data-stream-0        a DATA frame on stream 0
  unknown-type         a frame of an unknown type (must be ignored), then a CONNECT on the same connection
  tunnel-then-bad      a CONNECT answered 200 (a live tunnel), then a SETTINGS frame of bad length
  bad-hpack            HEADERS whose block indexes entry 0 (a decoding error, RFC 7541 §6.1)
  big-value            a CONNECT with one 100 KiB header value
  big-list             a CONNECT with 40 headers of 2.5 KiB (100 KiB, each field small)
  continuation-flood   HEADERS without END_HEADERS, then up to COUNT small CONTINUATION frames
  stream-flood         COUNT CONNECT streams at once, none closed
  rapid-reset          COUNT times: open a CONNECT stream and reset it at once (CVE-2023-44487)"""
import json
import sys
import time

from rawh2 import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    RST_STREAM,
    SETTINGS,
    RawH2,
    frame,
    tls_connect,
)

CANCEL = 8
mode, target, root, cert, key, authority = sys.argv[1:7]
count = int(sys.argv[7]) if len(sys.argv) > 7 else 0
linger = float(sys.argv[8]) if len(sys.argv) > 8 else 0
out = {"mode": mode}
began = time.monotonic()


def refused(h, timeout=5):
    """Waits for the server's GOAWAY or close; a close right after its GOAWAY is caught too."""
    h.pump_until(lambda: h.goaway is not None, timeout)
    h.pump_until(lambda: False, 0.5)


def run():
    h = RawH2(tls_connect(target, root, cert, key))
    if mode == "garbage-preface":
        h.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(64)))
        refused(h)
        return h
    if not h.start():
        out["error"] = "no SETTINGS from the server"
        return h
    out["server_max_streams"] = h.settings.get(3)
    if mode == "settings-length":
        h.send(frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"))
        refused(h)
    elif mode == "frame-too-large":
        h.send(frame(DATA, 0, 1, b"x" * 64, length=0xFFFFFF))
        refused(h)
    elif mode == "data-stream-0":
        h.send(frame(DATA, 0, 0, b"x" * 16))
        refused(h)
    elif mode == "unknown-type":
        h.send(frame(0xEE, 0xFF, 0, b"\xee" * 64))
        h.send(h.connect_frames(1, authority))
        h.pump_until(lambda: 1 in h.statuses or 1 in h.resets, 5)
        if h.statuses.get(1) == 200:
            h.send(frame(DATA, 0, 1, b"still-speaking-h2"))
            h.pump_until(lambda: len(h.data.get(1, b"")) >= 17, 5)
            out["echo"] = h.data.get(1) == b"still-speaking-h2"
        out["alive"] = h.alive()
    elif mode == "tunnel-then-bad":
        h.send(h.connect_frames(1, authority))
        h.pump_until(lambda: 1 in h.statuses, 5)
        h.send(frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"))
        refused(h)
    elif mode == "bad-hpack":
        h.send(frame(0x1, END_HEADERS, 1, b"\x80"))
        refused(h)
    elif mode == "big-value":
        h.send(h.connect_frames(1, authority, [("x-big", "a" * 100 * 1024)]))
        h.pump_until(lambda: 1 in h.statuses or 1 in h.resets or h.goaway, 5)
        refused(h, 0)
        out["alive"] = h.alive()
    elif mode == "big-list":
        h.send(h.connect_frames(1, authority, [("x-h%d" % i, "b" * 2560) for i in range(40)]))
        h.pump_until(lambda: 1 in h.statuses or 1 in h.resets or h.goaway, 5)
        refused(h, 0)
        out["alive"] = h.alive()
    elif mode == "continuation-flood":
        h.send(h.header_frames(1, [(":method", "CONNECT"), (":authority", authority)], end_headers=False))
        # A literal field without indexing, new name: the server must buffer it until END_HEADERS.
        piece = frame(CONTINUATION, 0, 1, b"\x00\x03x-c\x0a" + b"c" * 10)
        sent = 0
        while sent < count and not h.closed and not h.goaway:
            if h.send(piece * 100):
                sent += 100
            h.pump(0)
        out["sent"] = sent
        refused(h)
    elif mode == "stream-flood":
        ids = [1 + 2 * i for i in range(count)]
        h.send(b"".join(h.connect_frames(sid, authority) for sid in ids))
        answered = lambda: all(sid in h.statuses or sid in h.resets for sid in ids)  # noqa: E731
        h.pump_until(lambda: answered() or h.goaway, 10)
        out["answered"] = sum(1 for sid in ids if sid in h.statuses or sid in h.resets)
        out["alive"] = h.alive()
    elif mode == "rapid-reset":
        sent = 0
        sid = 1
        while sent < count and not h.closed and not h.goaway:
            batch = b""
            for _ in range(min(100, count - sent)):
                batch += h.connect_frames(sid, authority) + frame(RST_STREAM, 0, sid, CANCEL.to_bytes(4, "big"))
                sid += 2
            if h.send(batch):
                sent += min(100, count - sent)
            h.pump(0)
        out["sent"] = sent
        refused(h)
    else:
        raise SystemExit("unknown mode " + mode)
    return h


h = None
try:
    h = run()
    out.update(h.summary())
except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
    out["error"] = "%s: %s" % (type(e).__name__, e)
out["seconds"] = round(time.monotonic() - began, 3)
print(json.dumps(out), flush=True)
if linger and h is not None:
    h.pump_until(lambda: False, max(linger - (time.monotonic() - began), 0))
    closed_after = round(time.monotonic() - began, 3) if h.closed else None
    print(json.dumps({"phase": "closed", "mode": mode, "closed_after": closed_after, "how": h.closed}), flush=True)
