"""An independent HBONE client: Python's `h2` over Python's `ssl`, TLS 1.3 with ALPN h2 and a client
certificate, one CONNECT stream, a payload echoed through it. Prints one JSON line.

Usage: hbone_client.py TARGET_IP:PORT ROOT_PEM CERT_PEM|- KEY_PEM|- AUTHORITY [METHOD] [PAYLOAD_BYTES]
CERT/KEY `-` means: present no client certificate."""
import json
import os
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events

target, root, cert, key, authority = sys.argv[1:6]
method = sys.argv[6] if len(sys.argv) > 6 else "CONNECT"
size = int(sys.argv[7]) if len(sys.argv) > 7 else 1024
host, port = target.rsplit(":", 1)
out = {"authority": authority, "method": method}

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname = False  # HBONE checks the URI SAN, not a host name
ctx.load_verify_locations(root)
ctx.set_alpn_protocols(["h2"])
if cert != "-":
    ctx.load_cert_chain(cert, key)

try:
    raw = socket.create_connection((host, int(port)), timeout=10)
    tls = ctx.wrap_socket(raw)
    out["alpn"] = tls.selected_alpn_protocol()
    out["tls_version"] = tls.version()
    peer = tls.getpeercert()
    out["peer_uris"] = [v for (k, v) in peer.get("subjectAltName", ()) if k == "URI"]
    # h2 4.1 insists on :scheme/:path for every request; a CONNECT has neither (RFC 9113 §8.5), so
    # outbound validation is off. Responses are still validated.
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    )
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    # Bytes, so h2 recognises CONNECT and does not ask for :scheme/:path (RFC 9113 §8.5).
    headers = [(b":method", method.encode()), (b":authority", authority.encode())]
    if method != "CONNECT":
        headers += [(b":scheme", b"https"), (b":path", b"/")]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers)
    tls.sendall(conn.data_to_send())
    payload = os.urandom(size)
    echoed = b""
    sent = 0
    started = False
    done = False

    def send_more():
        # Respect HTTP/2 flow control: send only what the peer's windows allow, resume on WINDOW_UPDATE.
        global sent
        while sent < size:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, size - sent)
            if room <= 0:
                return
            conn.send_data(sid, payload[sent : sent + room])
            sent += room

    while not done:
        data = tls.recv(65536)
        if not data:
            out["closed"] = True
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = int(dict(ev.headers)[b":status"])
                if out["status"] != 200:
                    done = True
                elif not started:
                    started = True
                    send_more()
            elif isinstance(ev, h2.events.WindowUpdated):
                if started:
                    send_more()
            elif isinstance(ev, h2.events.DataReceived):
                echoed += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                if len(echoed) >= size and "echo" not in out:
                    out["echo"] = echoed == payload
                    conn.end_stream(sid)
            elif isinstance(ev, h2.events.StreamEnded):
                out["stream_ended"] = True
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                out["reset"] = int(ev.error_code)
                done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["goaway"] = int(ev.error_code)
                done = True
        tls.sendall(conn.data_to_send())
except (OSError, ssl.SSLError) as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out), flush=True)
