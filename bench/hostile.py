#!/usr/bin/env python3
"""Hostile-client figures for BENCHMARKS.md (issue 13), against a running
`roomhost serve` on the loopback interface only.

    python3 bench/hostile.py pingflood  --port P --pid PID [--secs 10] [--clients 4]
    python3 bench/hostile.py silent     --port P [--conns 300] [--wait 35]
    python3 bench/hostile.py slowbodies --port P --room collab/doc [--conns 300] [--after 15]
    python3 bench/hostile.py fdlimit    --port P [--conns 600]
    python3 bench/hostile.py querymem   --port P --pid PID [--conns 500] [--query 60000]

pingflood: clients that flood pings and never read; prints the server's RSS
growth. silent: TCP connections that send nothing (half of them half a
request line); prints how many the server closed within the wait.
slowbodies: connections trickling a request body one byte a second, then
ordinary GETs to a live room; prints how many were answered (not 503).
fdlimit: silent connections past the server's open-files limit (start it
under `prlimit --nofile=N`), then a /status request and a WebSocket
handshake; prints whether both were answered. querymem: WebSocket
connections to one room, each with a query of --query bytes; prints the
server's RSS per connection (or how the server refused the query).
Every loop is bounded in count and time; the target is always 127.0.0.1.
"""

import argparse
import base64
import os
import select
import socket
import sys
import time

HOST = "127.0.0.1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ws_connect(port, path):
    sock = socket.create_connection((HOST, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("closed during handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    return sock


def masked_ping(payload):
    mask = b"\x11\x22\x33\x44"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + body


def pingflood(args):
    socks = [ws_connect(args.port, f"/ws/flood-{i}") for i in range(args.clients)]
    for sock in socks:
        sock.setblocking(False)
    # Many pings per write: the flood is limited by the server, not Python.
    burst = masked_ping(b"p" * 125) * 256
    start_rss = rss_kib(args.pid)
    peak = start_rss
    deadline = time.monotonic() + args.secs
    sent = 0
    open_socks = list(socks)
    while time.monotonic() < deadline and open_socks:
        _, writable, _ = select.select([], open_socks, [], 0.1)
        for sock in writable:
            try:
                sent += sock.send(burst)
            except OSError:
                open_socks.remove(sock)
        peak = max(peak, rss_kib(args.pid))
    end_rss = rss_kib(args.pid)
    print(
        f"pingflood: {args.clients} clients, {args.secs} s, {sent / 1e6:.1f} MB of pings sent, "
        f"{len(socks) - len(open_socks)} clients cut off; server RSS {start_rss / 1024:.1f} MiB -> "
        f"peak {peak / 1024:.1f} MiB (growth {(peak - start_rss) / 1024:.1f} MiB)"
    )
    for sock in socks:
        sock.close()


def silent(args):
    socks = []
    for i in range(args.conns):
        sock = socket.create_connection((HOST, args.port), timeout=10)
        if i % 2:
            sock.sendall(b"GET /status HT")
        sock.setblocking(False)
        socks.append(sock)
    start = time.monotonic()
    open_socks = set(socks)
    while open_socks and time.monotonic() - start < args.wait:
        readable, _, _ = select.select(list(open_socks), [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_socks.discard(sock)
    elapsed = time.monotonic() - start
    closed = len(socks) - len(open_socks)
    print(f"silent: {closed}/{len(socks)} connections closed by the server within {elapsed:.1f} s")
    for sock in socks:
        sock.close()


def get_status(port, path):
    try:
        sock = socket.create_connection((HOST, port), timeout=35)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = sock.recv(64)
        sock.close()
        return int(data.split()[1]) if data else None
    except (OSError, ValueError, IndexError):
        return None


def slowbodies(args):
    service, room = args.room.split("/")
    keeper = ws_connect(args.port, f"/ws/{service}/{room}" if args.several else f"/ws/{room}")
    trickles = []
    post = f"POST /rooms/{service}/{room}/update HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    for _ in range(args.conns):
        sock = socket.create_connection((HOST, args.port), timeout=10)
        sock.sendall(post.encode())
        sock.setblocking(False)
        trickles.append(sock)
    start = time.monotonic()
    while time.monotonic() - start < args.after:
        for sock in trickles:
            try:
                sock.send(b"x")
            except OSError:
                pass
        time.sleep(1)
    statuses = {}
    for _ in range(args.requests):
        for sock in trickles:
            try:
                sock.send(b"x")
            except OSError:
                pass
        status = get_status(args.port, f"/rooms/{service}/{room}/doc")
        statuses[status] = statuses.get(status, 0) + 1
    answered = sum(count for status, count in statuses.items() if status not in (None, 503))
    print(
        f"slowbodies: {args.conns} trickling bodies for {args.after} s, then {args.requests} GETs: "
        f"{answered}/{args.requests} answered (statuses {statuses})"
    )
    for sock in trickles:
        sock.close()
    keeper.close()


def fdlimit(args):
    socks = []
    for _ in range(args.conns):
        try:
            socks.append(socket.create_connection((HOST, args.port), timeout=2))
        except OSError:
            break
    time.sleep(1)
    start = time.monotonic()
    status = get_status(args.port, "/status")
    try:
        ws_connect(args.port, "/ws/after-flood").close()
        upgraded = "101"
    except (OSError, RuntimeError) as error:
        upgraded = f"failed ({error})"
    print(
        f"fdlimit: {len(socks)} silent connections open; then /status -> {status}, "
        f"WebSocket -> {upgraded} in {time.monotonic() - start:.2f} s"
    )
    for sock in socks:
        sock.close()


def querymem(args):
    query = "q=" + "x" * max(args.query - 2, 0)
    time.sleep(1)
    start_rss = rss_kib(args.pid)
    socks = []
    refused = None
    for _ in range(args.conns):
        try:
            socks.append(ws_connect(args.port, f"/ws/mem?{query}"))
        except (OSError, RuntimeError) as error:
            refused = error
            break
    time.sleep(2)
    end_rss = rss_kib(args.pid)
    if socks:
        per = (end_rss - start_rss) / len(socks)
        print(f"querymem: {len(socks)} connections with a {args.query}-byte query: {per:.1f} KiB RSS each")
    else:
        print(f"querymem: {args.query}-byte query refused: {refused}")
    for sock in socks:
        sock.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pingflood", "silent", "slowbodies", "fdlimit", "querymem"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--secs", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--conns", type=int, default=300)
    parser.add_argument("--wait", type=float, default=35)
    parser.add_argument("--room", default="collab/doc")
    parser.add_argument("--several", action="store_true", help="the server has several services")
    parser.add_argument("--after", type=float, default=15)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--query", type=int, default=60000)
    args = parser.parse_args()
    args.secs = min(args.secs, 60)
    args.conns = min(args.conns, 5000)
    {"pingflood": pingflood, "silent": silent, "slowbodies": slowbodies, "fdlimit": fdlimit, "querymem": querymem}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
