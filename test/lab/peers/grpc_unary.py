"""One gRPC unary call with grpcio (raw bytes, no stubs): prints JSON with the status code, details,
the response bytes, and trailing metadata. Usage: grpc_unary.py TARGET METHOD [key=value metadata…]"""
import json
import sys

import grpc

target, method = sys.argv[1], sys.argv[2]
metadata = [tuple(kv.split("=", 1)) for kv in sys.argv[3:]]
with grpc.insecure_channel(target) as channel:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        response, info = call.with_call(b"hello grpc", metadata=metadata, timeout=5)
        print(json.dumps({"code": "OK", "response": response.decode("latin-1"), "trailers": dict(info.trailing_metadata() or [])}))
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details(), "trailers": dict(e.trailing_metadata() or [])}))
