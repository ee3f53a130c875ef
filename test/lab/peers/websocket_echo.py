"""A WebSocket opening handshake by hand (RFC 6455 section 4.1), then bytes echoed back.

Usage: websocket_echo.py HOST PORT PATH. Prints JSON: the status line, whether Sec-WebSocket-Accept
is right for our key (computed here, independently of the server), and the echoed bytes.
"""
import base64
import hashlib
import json
import os
import socket
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = base64.b64encode(os.urandom(16)).decode()
expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
s = socket.create_connection((host, port), timeout=5)
s.sendall(
    (
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)
    ).encode()
)
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(4096)
    if not chunk:
        break
    head += chunk
head, _, rest = head.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
payload = b"ping over the tunnel"
s.sendall(payload)
echoed = rest
while len(echoed) < len(payload):
    chunk = s.recv(4096)
    if not chunk:
        break
    echoed += chunk
s.close()
print(json.dumps({"status": lines[0], "acceptOk": headers.get("sec-websocket-accept") == expected, "echoed": echoed.decode("latin-1")}))
