#!/usr/bin/env python3
"""Independent servers for the load generator's tests, written against Python's own stacks (asyncio,
http.server, the `h2` state machine, grpcio), none of which shares code with the generator's clients.

    peers.py KIND [options]      KIND: tcp-echo | discard | http1 | h2 | grpc

Prints {"port": N} once listening on 127.0.0.1 (port 0), then answers each `stats` line on stdin with one
JSON line of what it saw; exits when stdin closes. Faults are injected by options (see `parse`).
"""
import argparse
import asyncio
import json
import select
import socket
import struct
import sys
import threading
import time


def out(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def parse():
    p = argparse.ArgumentParser()
    p.add_argument('kind', choices=['tcp-echo', 'discard', 'http1', 'h2', 'grpc'])
    p.add_argument('--payload', type=int, default=1, help='tcp-echo: bytes per request')
    p.add_argument('--response-bytes', type=int, default=16)
    p.add_argument('--delay-ms', type=float, default=0, help='answer each request this late')
    p.add_argument('--status', type=int, default=200, help='http1/h2: status of the answers')
    p.add_argument('--status-first', type=int, default=0, help='only the first N answers get --status')
    p.add_argument('--never-answer', action='store_true')
    p.add_argument('--reset', choices=['', 'connection', 'stream', 'after-headers'], default='',
                   help='connection: RST the TCP connection on a request; stream: RST_STREAM it (h2); '
                        'after-headers: h2 answers :status 200 and part of a body, then RST_STREAM')
    p.add_argument('--reset-code', type=int, default=2, help='h2 RST_STREAM error code (2 INTERNAL_ERROR)')
    p.add_argument('--stall-after', type=int, default=0, help='after N requests, hold every answer ...')
    p.add_argument('--stall-ms', type=float, default=0, help='... for this long, once')
    p.add_argument('--die-after', type=int, default=0, help='tcp-echo: after N requests, stop listening, RST all')
    p.add_argument('--abort', default='', help='grpc: fail every call with this status code name')
    p.add_argument('--wrong-length', action='store_true', help='grpc: echo one byte short')
    return p.parse_args()


ARGS = parse()


class Stats:
    def __init__(self):
        self.connections = 0  # accepted
        self.open = 0  # open now
        self.requests = 0  # complete requests received
        self.max_per_connection = 0  # most requests seen on one connection
        self.max_concurrent = 0  # most requests open (received, not answered) on one connection at once
        self.max_concurrent_total = 0  # ... over all connections at once
        self.concurrent_total = 0
        self.held = 0  # requests received while the stall held answers back
        self.bytes = 0  # request bytes (discard: uploaded bytes)
        self.answered = 0
        self.statuses = {}
        self.cancelled = 0  # grpc: calls the client cancelled
        self.peers = {}  # grpc: calls per client connection
        self.clients = set()  # client IP addresses seen
        self.paths = set()  # HTTP request paths seen
        self.authorities = set()  # HTTP Host / :authority seen

    def dump(self):
        d = dict(self.__dict__)
        d.pop('concurrent_total')
        d['peer_count'] = len(self.peers)
        d['max_per_peer'] = max(self.peers.values(), default=0)
        d.pop('peers')
        for k in ('clients', 'paths', 'authorities'):
            d[k] = sorted(d[k])
        return d


S = Stats()
LOCK = threading.Lock()
STOP = threading.Event()


def rst(sock):
    """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass


def control(stats, on_eof=lambda: None):
    for line in sys.stdin:
        if line.strip() == 'stats':
            out(stats())
    STOP.set()
    on_eof()


# ---- asyncio servers: tcp-echo, discard, h2 -------------------------------------------------------------

class Stall:
    """Holds answers back once, for --stall-ms, from the --stall-after'th request on (all connections)."""

    def __init__(self, loop):
        self.loop = loop
        self.triggered = False
        self.active = False
        self.held = []

    def check(self):
        if ARGS.stall_after and not self.triggered and S.requests >= ARGS.stall_after:
            self.triggered = True
            self.active = True
            self.loop.call_later(ARGS.stall_ms / 1000, self.release)

    def release(self):
        self.active = False
        held, self.held = self.held, []
        for fn in held:
            fn()

    def run(self, fn, requests=1):
        if self.active:
            S.held += requests
            self.held.append(fn)
        else:
            fn()


class TcpEcho(asyncio.Protocol):
    transports = set()
    server = None

    def __init__(self, stall):
        self.stall = stall
        self.got = 0
        self.reqs = 0

    def connection_made(self, tr):
        self.tr = tr
        TcpEcho.transports.add(tr)
        S.clients.add(tr.get_extra_info('peername')[0])
        S.connections += 1
        S.open += 1

    def connection_lost(self, exc):
        TcpEcho.transports.discard(self.tr)
        S.open -= 1

    def data_received(self, data):
        if ARGS.reset == 'connection':
            rst(self.tr.get_extra_info('socket'))
            self.tr.abort()
            return
        self.got += len(data)
        S.bytes += len(data)
        reqs = self.got // ARGS.payload
        new, self.reqs = reqs - self.reqs, reqs
        S.requests += new
        S.max_per_connection = max(S.max_per_connection, self.reqs)
        if ARGS.die_after and S.requests >= ARGS.die_after:
            TcpEcho.server.close()
            for tr in list(TcpEcho.transports):
                rst(tr.get_extra_info('socket'))
                tr.abort()
            return
        if ARGS.never_answer:
            return
        self.stall.check()
        tr = self.tr

        def answer():
            if not tr.is_closing():
                tr.write(data)
                S.answered += new

        self.stall.run(answer, new)


class Discard(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
        self.got = 0
        S.connections += 1
        S.open += 1

    def connection_lost(self, exc):
        S.open -= 1

    def data_received(self, data):
        self.got += len(data)
        S.bytes += len(data)

    def eof_received(self):
        self.tr.write(struct.pack('>Q', self.got))
        return False  # the transport closes after the count is written


class H2(asyncio.Protocol):
    def __init__(self, loop, stall):
        import h2.config
        import h2.connection
        self.loop = loop
        self.stall = stall
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding='utf-8'))
        self.open_streams = set()
        self.n = 0
        self.closed = False

    def connection_made(self, tr):
        self.tr = tr
        S.clients.add(tr.get_extra_info('peername')[0])
        S.connections += 1
        S.open += 1
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc):
        self.closed = True
        S.open -= 1
        S.concurrent_total -= len(self.open_streams)
        self.open_streams.clear()

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.tr.write(data)

    def done(self, sid):
        if sid in self.open_streams:
            self.open_streams.discard(sid)
            S.concurrent_total -= 1

    def data_received(self, data):
        import h2.events
        import h2.exceptions
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.tr.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                headers = dict(ev.headers)
                S.paths.add(headers.get(':path', ''))
                S.authorities.add(headers.get(':authority', ''))
                S.requests += 1
                self.n += 1
                S.max_per_connection = max(S.max_per_connection, self.n)
                self.open_streams.add(ev.stream_id)
                S.concurrent_total += 1
                S.max_concurrent = max(S.max_concurrent, len(self.open_streams))
                S.max_concurrent_total = max(S.max_concurrent_total, S.concurrent_total)
                if ARGS.reset == 'connection':
                    rst(self.tr.get_extra_info('socket'))
                    self.tr.abort()
                    return
                if ARGS.reset == 'stream':
                    self.conn.reset_stream(ev.stream_id, ARGS.reset_code)
                    self.done(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                S.bytes += len(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.request_complete(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.done(ev.stream_id)
        self.flush()

    def request_complete(self, sid):
        if sid not in self.open_streams or ARGS.never_answer:
            return
        self.stall.check()

        def answer():
            self.stall.run(lambda: self.respond(sid))

        if ARGS.delay_ms:
            self.loop.call_later(ARGS.delay_ms / 1000, answer)
        else:
            answer()

    def respond(self, sid):
        if self.closed or sid not in self.open_streams:
            return
        self.done(sid)
        status = ARGS.status if (not ARGS.status_first or S.answered < ARGS.status_first) else 200
        S.answered += 1
        S.statuses[status] = S.statuses.get(status, 0) + 1
        body = b'b' * ARGS.response_bytes
        if ARGS.reset == 'after-headers':
            self.conn.send_headers(sid, [(':status', '200'), ('content-length', str(len(body) + 100))])
            self.conn.send_data(sid, body)
            self.conn.reset_stream(sid, ARGS.reset_code)
        else:
            self.conn.send_headers(sid, [(':status', str(status)), ('content-length', str(len(body)))],
                                   end_stream=not body)
            if body:
                self.conn.send_data(sid, body, end_stream=True)
        self.flush()


def serve_asyncio():
    loop = asyncio.new_event_loop()
    stall = Stall(loop)
    if ARGS.kind == 'tcp-echo':
        factory = lambda: TcpEcho(stall)  # noqa: E731
    elif ARGS.kind == 'discard':
        factory = Discard
    else:
        factory = lambda: H2(loop, stall)  # noqa: E731
    server = loop.run_until_complete(loop.create_server(factory, '127.0.0.1', 0, backlog=1024))
    TcpEcho.server = server
    out({'port': server.sockets[0].getsockname()[1]})

    async def dump():
        return S.dump()

    def stats():
        return asyncio.run_coroutine_threadsafe(dump(), loop).result()

    threading.Thread(target=control, args=(stats, lambda: loop.call_soon_threadsafe(loop.stop)),
                     daemon=True).start()
    loop.run_forever()


# ---- http.server: HTTP/1.1 keep-alive --------------------------------------------------------------------

def serve_http1():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    stall = {'triggered': False, 'until': 0.0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True  # headers and body are two writes: no Nagle wait between

        def setup(self):
            super().setup()
            self.n = 0
            with LOCK:
                S.clients.add(self.client_address[0])
                S.connections += 1
                S.open += 1

        def finish(self):
            try:
                super().finish()
            except (OSError, ValueError):
                pass
            with LOCK:
                S.open -= 1

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.answer()

        def do_POST(self):
            self.answer()

        def answer(self):
            length = int(self.headers.get('Content-Length') or 0)
            got = len(self.rfile.read(length)) if length else 0
            with LOCK:
                S.paths.add(self.path)
                S.authorities.add(self.headers.get('Host', ''))
                S.bytes += got
                S.requests += 1
                self.n += 1
                S.max_per_connection = max(S.max_per_connection, self.n)
                if ARGS.stall_after and not stall['triggered'] and S.requests >= ARGS.stall_after:
                    stall['triggered'] = True
                    stall['until'] = time.monotonic() + ARGS.stall_ms / 1000
                wait = stall['until'] - time.monotonic()
                if wait > 0:
                    S.held += 1
                status = ARGS.status if (not ARGS.status_first or S.answered < ARGS.status_first) else 200
                S.answered += 1
                S.statuses[status] = S.statuses.get(status, 0) + 1
            if ARGS.reset == 'connection':
                rst(self.connection)
                self.connection.close()
                self.close_connection = True
                return
            if ARGS.never_answer:
                # Silent, but watching for the client's close (a read of 0 bytes) or reset.
                while not STOP.is_set():
                    readable, _, _ = select.select([self.connection], [], [], 0.02)
                    try:
                        if readable and not self.connection.recv(1, socket.MSG_PEEK):
                            break
                    except OSError:
                        break
                self.close_connection = True
                return
            if wait > 0:
                time.sleep(wait)
            if ARGS.delay_ms:
                time.sleep(ARGS.delay_ms / 1000)
            body = b'b' * ARGS.response_bytes
            self.send_response(status)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

        def handle_error(self, request, client_address):
            pass

    server = Server(('127.0.0.1', 0), Handler)
    out({'port': server.server_address[1]})
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stats():
        with LOCK:
            return S.dump()

    control(stats)


# ---- grpcio: /weft.bench.Echo/Echo with raw bytes ---------------------------------------------------------

def serve_grpc():
    from concurrent import futures
    import grpc
    inflight = {}

    def echo(request, context):
        peer = context.peer()
        with LOCK:
            S.requests += 1
            S.bytes += len(request)
            S.peers[peer] = S.peers.get(peer, 0) + 1
            S.max_per_connection = max(S.max_per_connection, S.peers[peer])
            inflight[peer] = inflight.get(peer, 0) + 1
            S.concurrent_total += 1
            S.max_concurrent = max(S.max_concurrent, inflight[peer])
            S.max_concurrent_total = max(S.max_concurrent_total, S.concurrent_total)
        try:
            if ARGS.never_answer:
                while not STOP.wait(0.02):
                    if not context.is_active():
                        with LOCK:
                            S.cancelled += 1
                        break
                return request
            if ARGS.delay_ms:
                time.sleep(ARGS.delay_ms / 1000)
            with LOCK:
                S.answered += 1
            if ARGS.abort:
                context.abort(getattr(grpc.StatusCode, ARGS.abort), 'injected by the test peer')
            return request[:-1] if ARGS.wrong_length else request
        finally:
            with LOCK:
                inflight[peer] -= 1
                S.concurrent_total -= 1

    handler = grpc.method_handlers_generic_handler(
        'weft.bench.Echo', {'Echo': grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128), handlers=[handler],
                         options=[('grpc.so_reuseport', 0)])
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    out({'port': port})

    def stats():
        with LOCK:
            return S.dump()

    control(stats, lambda: server.stop(0))


if ARGS.kind == 'http1':
    serve_http1()
elif ARGS.kind == 'grpc':
    serve_grpc()
else:
    serve_asyncio()
