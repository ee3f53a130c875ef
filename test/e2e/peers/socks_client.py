"""A SOCKS5 client (RFC 1928, by hand) for end-to-end tests: from a pod address, through the agent's
SOCKS5 port, to a destination; sends a payload and checks the echo. Prints one JSON line.

Usage: socks_client.py SRC_IP SOCKS_HOST:PORT DST_IP:PORT PAYLOAD_BYTES [hold]
With `hold`, after the first echo it prints {"phase": "open"} and waits for a line on stdin, then tries
a second echo and reports whether the connection was still usable."""
import json
import os
import socket
import struct
import sys

src_ip, socks_addr, dst_addr, size = sys.argv[1:5]
hold = len(sys.argv) > 5 and sys.argv[5] == "hold"
sh, sp = socks_addr.rsplit(":", 1)
dh, dp = dst_addr.rsplit(":", 1)
result = {"src": src_ip, "dst": dst_addr}


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def echo_round(s, n):
    payload = os.urandom(n)
    s.sendall(payload)
    back = recv_exact(s, n)
    return back == payload


s = socket.socket()
s.settimeout(10)
s.bind((src_ip, 0))
try:
    s.connect((sh, int(sp)))
    s.sendall(b"\x05\x01\x00")
    result["method"] = recv_exact(s, 2).hex()
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(dh) + struct.pack(">H", int(dp)))
    rep = recv_exact(s, 10)
    result["reply"] = rep[1] if len(rep) >= 2 else None
    if result["reply"] == 0:
        result["echo"] = echo_round(s, int(size))
        if hold:
            print(json.dumps({"phase": "open", **result}), flush=True)
            sys.stdin.readline()
            try:
                result["second_echo"] = echo_round(s, 16)
            except OSError as e:
                result["second_echo"] = False
                result["second_error"] = type(e).__name__
        # Half-close: our FIN must reach the server, whose FIN must come back.
        s.shutdown(socket.SHUT_WR)
        result["eof"] = s.recv(1) == b""
except OSError as e:
    result["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(result), flush=True)
