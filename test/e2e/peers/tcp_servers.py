"""TCP echo servers for end-to-end tests: one per HOST:PORT argument. Prints `listening` once all are
bound, then one `accept <local> <remote>` line per connection, flushed, so a test can tell what was dialled.
An echo server answers every byte with the same byte and closes its side when the client closes its own."""
import socket
import sys
import threading


def serve(sock):
    while True:
        conn, remote = sock.accept()
        local = "%s:%d" % conn.getsockname()[:2]
        print("accept %s %s:%d" % (local, remote[0], remote[1]), flush=True)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(data)


socks = []
for arg in sys.argv[1:]:
    host, port = arg.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)
    socks.append(s)
print("listening", flush=True)
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
sys.stdin.read()  # run until the test closes our stdin
