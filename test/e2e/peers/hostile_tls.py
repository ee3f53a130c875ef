"""TLS clients that never finish their handshake, to check the server drops them in time.

Usage: hostile_tls.py TARGET_IP:PORT IDLE_COUNT DEADLINE_S

Opens, at once: `silent` (TCP only, sends nothing), `half_hello` (the first half of a real ClientHello),
`full_hello` (a whole ClientHello, then silence while the server waits for our Finished), `trickle`
(a ClientHello at 1 byte per 200 ms, which would take over a minute), and IDLE_COUNT more silent
sockets. Prints {"phase": "open", ...} once all are connected and the test's good tunnels may run,
then waits up to DEADLINE_S for the server to close each, and prints the seconds each took (null: still
open at the deadline)."""
import json
import select
import socket
import ssl
import sys
import time

target, idle_count, deadline_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = target.rsplit(":", 1)


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Conn:
    def __init__(self, name, first=b""):
        self.name = name
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.opened = time.monotonic()
        if first:
            self.sock.sendall(first)
        self.sock.setblocking(False)
        self.closed_after = None

    def readable(self):
        """Drains what the server sent; notes the time of EOF or reset."""
        try:
            if self.sock.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.closed_after = round(time.monotonic() - self.opened, 3)


hello = client_hello()
out = {"hello_bytes": len(hello)}
named = [
    Conn("silent"),
    Conn("half_hello", hello[: len(hello) // 2]),
    Conn("full_hello", hello),
    Conn("trickle"),
]
idle = [Conn("idle") for _ in range(idle_count)]
conns = named + idle
trickle = named[3]
trickled = 0
print(json.dumps({"phase": "open", "open": len(conns)}), flush=True)

end = time.monotonic() + deadline_s
next_byte = time.monotonic()
while time.monotonic() < end:
    live = [c for c in conns if c.closed_after is None]
    if not live:
        break
    if trickle.closed_after is None and trickled < len(hello) and time.monotonic() >= next_byte:
        try:
            trickle.sock.send(hello[trickled : trickled + 1])
            trickled += 1
        except BlockingIOError:
            pass
        except OSError:
            trickle.closed_after = round(time.monotonic() - trickle.opened, 3)
        next_byte += 0.2
    ready, _, _ = select.select([c.sock for c in live], [], [], 0.05)
    by_sock = {c.sock: c for c in live}
    for s in ready:
        by_sock[s].readable()

for c in named:
    out[c.name] = c.closed_after
out["trickled_bytes"] = trickled
idle_times = [c.closed_after for c in idle if c.closed_after is not None]
out["idle_closed"] = len(idle_times)
out["idle_max"] = max(idle_times) if idle_times else None
for c in conns:
    c.sock.close()
print(json.dumps(out), flush=True)
