"""Sends raw HTTP/1.1 requests (one connection each) and prints each answer's status line as JSON.

Usage: raw_http.py HOST PORT  (cases as JSON on stdin: {"name": "request bytes as latin-1 text"})
A peer nobody here wrote would not send these on purpose: they are the smuggling attempts a proxy must
refuse or normalize before policy. Every connection is bounded by a timeout.
"""
import json
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
cases = json.load(sys.stdin)
out = {}
for name, text in cases.items():
    data = b""
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(text.encode("latin-1"))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
    except OSError as e:
        out[name] = "error: %s" % e
        continue
    finally:
        s.close()
    out[name] = data.split(b"\r\n", 1)[0].decode("latin-1")
print(json.dumps(out))
