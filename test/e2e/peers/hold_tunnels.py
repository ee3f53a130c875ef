"""Two long-lived good tunnels to one destination, held open while a test attacks the HBONE server:
`socks` from a pod address through the local agent's SOCKS5 port (so through its pooled HBONE
connection), and `hbone` straight to the destination's HBONE port with Python's h2 and a client
certificate, one CONNECT stream. Each line on stdin runs one echo round on both and prints one JSON
line; EOF on stdin closes both. Between rounds the HBONE connection is still read, so the server's
keepalive PINGs are answered, as any live client would.

Usage: hold_tunnels.py SRC_IP SOCKS_HOST:PORT DST_IP:PORT HBONE_IP:PORT ROOT_PEM CERT_PEM KEY_PEM"""
import json
import os
import select
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events

src_ip, socks_addr, dst, hbone_addr, root, cert, key = sys.argv[1:8]
ROUND_BYTES = 4096


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def open_socks():
    sh, sp = socks_addr.rsplit(":", 1)
    dh, dp = dst.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(5)
    s.bind((src_ip, 0))
    s.connect((sh, int(sp)))
    s.sendall(b"\x05\x01\x00")
    recv_exact(s, 2)
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(dh) + struct.pack(">H", int(dp)))
    rep = recv_exact(s, 10)
    if len(rep) < 2 or rep[1] != 0:
        raise OSError("SOCKS5 reply %r" % rep[:2])
    return s


def socks_round(s):
    payload = os.urandom(ROUND_BYTES)
    s.sendall(payload)
    return recv_exact(s, ROUND_BYTES) == payload


class HboneTunnel:
    def __init__(self):
        host, port = hbone_addr.rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(root)
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(cert, key)
        self.tls = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5))
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
        )
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [(b":method", b"CONNECT"), (b":authority", dst.encode())])
        self.tls.sendall(self.conn.data_to_send())
        self.status = None
        self.got = b""
        while self.status is None:
            self._read()
        if self.status != 200:
            raise OSError("CONNECT answered %s" % self.status)

    def _read(self, wait=True):
        if wait:
            data = self.tls.recv(65536)
        else:
            # Readable may be a TLS record that carries no application data: never block on it.
            self.tls.setblocking(False)
            try:
                data = self.tls.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            finally:
                self.tls.settimeout(5)
        if not data:
            raise EOFError("connection closed")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.got += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamReset, h2.events.StreamEnded, h2.events.ConnectionTerminated)):
                raise EOFError(type(ev).__name__)
        self.tls.sendall(self.conn.data_to_send())

    def service(self):
        """Handles what arrived between rounds (PINGs are answered by h2 itself)."""
        self._read(wait=False)
        return True

    def round(self):
        payload = os.urandom(ROUND_BYTES)
        self.got = b""
        self.conn.send_data(self.sid, payload)
        self.tls.sendall(self.conn.data_to_send())
        while len(self.got) < ROUND_BYTES:
            self._read()
        return self.got == payload


errors = {}


def attempt(name, fn):
    if name in errors:
        return False
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a dead tunnel is a result, not a crash
        errors[name] = "%s: %s" % (type(e).__name__, e)
        return False


def report(**fields):
    print(json.dumps({**fields, **({"errors": errors} if errors else {})}), flush=True)


sock = attempt("socks", open_socks)
hbone = attempt("hbone", HboneTunnel)
report(
    phase="open",
    socks=attempt("socks", lambda: socks_round(sock)),
    hbone=attempt("hbone", hbone.round) if hbone else False,
)
n = 0
while True:
    serviced = hbone and "hbone" not in errors
    if serviced and hbone.tls.pending():
        attempt("hbone", hbone.service)
        continue
    ready, _, _ = select.select([sys.stdin] + ([hbone.tls] if serviced else []), [], [], 60)
    if serviced and hbone.tls in ready:
        attempt("hbone", hbone.service)
    if sys.stdin in ready:
        if not sys.stdin.readline():
            break
        n += 1
        report(
            round=n,
            socks=attempt("socks", lambda: socks_round(sock)),
            hbone=attempt("hbone", hbone.round) if hbone else False,
        )
