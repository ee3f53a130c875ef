"""A hand-driven HTTP/2 client over mTLS for hostile tests: it writes whatever frames it is told to,
valid or not, and parses what the server sends back just enough to report it (statuses, resets,
GOAWAY, EOF). Not a general client: no flow control of its own, no server push, no padding."""
import select
import socket
import ssl
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
DEFAULT_MAX_FRAME = 16384
ERRORS = [
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
]


def error_name(code):
    return ERRORS[code] if code < len(ERRORS) else "0x%x" % code


def frame(type_, flags, stream_id, payload=b"", length=None):
    """One frame; `length` overrides the length field, to lie about the payload."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([type_, flags]) + struct.pack(">I", stream_id) + payload


def tls_connect(target, root, cert, key, timeout=10):
    host, port = target.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # HBONE checks the URI SAN, not a host name
    ctx.load_verify_locations(root)
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    return ctx.wrap_socket(raw)


class RawH2:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.statuses = {}  # stream id -> :status
        self.resets = {}  # stream id -> error name
        self.data = {}  # stream id -> bytes received
        self.goaway = None  # {"code": name, "last_stream": id}
        self.closed = None  # "eof", "reset" or the send error, once the connection is gone
        self.settings = {}
        self.ping_acks = 0

    def send(self, data):
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError) as e:
            self.closed = "send: %s" % type(e).__name__
            return False

    def start(self, timeout=5):
        """Preface and empty SETTINGS; returns once the server's SETTINGS arrived (and was acked)."""
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        self.pump_until(lambda: self.settings, timeout)
        return bool(self.settings)

    def header_frames(self, stream_id, headers, end_stream=False, end_headers=True, max_frame=DEFAULT_MAX_FRAME):
        block = self.encoder.encode(headers, huffman=False)
        chunks = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
        out = b""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            flags = (END_HEADERS if last and end_headers else 0) | (END_STREAM if i == 0 and end_stream else 0)
            out += frame(HEADERS if i == 0 else CONTINUATION, flags, stream_id, chunk)
        return out

    def connect_frames(self, stream_id, authority, extra=()):
        return self.header_frames(stream_id, [(":method", "CONNECT"), (":authority", authority), *extra])

    def pump(self, timeout):
        """Reads and handles what the server sent for up to `timeout` s (0: only what is here)."""
        deadline = time.monotonic() + max(timeout, 0)
        while not self.closed:
            if self.sock.pending() == 0:
                ready, _, _ = select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
                if not ready:
                    return
            # Readable does not mean application data (a TLS record may be partial): never block here.
            self.sock.setblocking(False)
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError) as e:
                self.closed = "reset" if isinstance(e, ConnectionResetError) else "recv: %s" % type(e).__name__
                return
            finally:
                self.sock.settimeout(10)
            if not chunk:
                self.closed = "eof"
                return
            self.buf += chunk
            self._frames()

    def pump_until(self, done, timeout):
        deadline = time.monotonic() + timeout
        while not self.closed and not done() and time.monotonic() < deadline:
            self.pump(min(0.2, deadline - time.monotonic()))

    def _frames(self):
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            type_, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9 : 9 + n]
            self.buf = self.buf[9 + n :]
            self._handle(type_, flags, sid, payload)

    def _handle(self, type_, flags, sid, payload):
        if type_ == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                ident, value = struct.unpack(">HI", payload[i : i + 6])
                self.settings[ident] = value
            self.settings.setdefault(0, 0)  # marks "received", even when empty
            self.send(frame(SETTINGS, ACK, 0))
        elif type_ == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif type_ == PING:
            self.ping_acks += 1
        elif type_ == HEADERS:
            # The server's responses are small: one frame, END_HEADERS, no padding or priority.
            headers = dict(self.decoder.decode(payload))
            if ":status" in headers:
                self.statuses[sid] = int(headers[":status"])
        elif type_ == DATA:
            self.data[sid] = self.data.get(sid, b"") + payload
        elif type_ == RST_STREAM:
            self.resets[sid] = error_name(struct.unpack(">I", payload[:4])[0])
        elif type_ == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = {"code": error_name(code), "last_stream": last & 0x7FFFFFFF}

    def alive(self, timeout=3):
        """True when the server still answers a PING."""
        if self.closed or (self.goaway and self.goaway["code"] != "NO_ERROR"):
            return False
        before = self.ping_acks
        if not self.send(frame(PING, 0, 0, b"weftping")):
            return False
        self.pump_until(lambda: self.ping_acks > before, timeout)
        return self.ping_acks > before

    def summary(self):
        counts = {}
        for status in self.statuses.values():
            counts[str(status)] = counts.get(str(status), 0) + 1
        resets = {}
        for code in self.resets.values():
            resets[code] = resets.get(code, 0) + 1
        return {"statuses": counts, "resets": resets, "goaway": self.goaway, "closed": self.closed}
