#!/usr/bin/env python3
"""grpcio calls /weft.bench.Echo/Echo with raw bytes (no serializers: bytes in, bytes out) on HOST:PORT:
payloads of several sizes one by one, then many at once on one channel, then a method that does not exist.
Prints one JSON line of what came back."""
import json
import os
import sys

import grpc

target = sys.argv[1]
with grpc.insecure_channel(target) as channel:
    grpc.channel_ready_future(channel).result(timeout=5)
    echo = channel.unary_unary('/weft.bench.Echo/Echo')
    sizes = [0, 1, 1024, 100_000]
    sequential = []
    for n in sizes:
        payload = os.urandom(n)
        sequential.append(echo(payload, timeout=5) == payload)
    payloads = [os.urandom(512) for _ in range(64)]
    futures = [echo.future(p, timeout=5) for p in payloads]
    concurrent = sum(1 for p, f in zip(payloads, futures) if f.result() == p)
    try:
        channel.unary_unary('/weft.bench.Echo/Nope')(b'x', timeout=5)
        unknown = 'OK'
    except grpc.RpcError as err:
        unknown = err.code().name
print(json.dumps({'sizes': sizes, 'sequential': sequential, 'concurrent': concurrent, 'unknown': unknown}))
