"""grpcio (Python's gRPC stack) as a client of svcauth's VerifyLayer on a tonic server.

    python grpc_peer.py whoami <host:port> [token]       -> {"code", "details", "www_authenticate", "sub"}
    python grpc_peer.py count <host:port> <token> <n>    -> {"code", "details", "subs"}

The messages of examples/demo-grpc/proto/demo.proto are encoded by hand (a
varint field is all Count needs), so no protoc runs here. The token goes in
the `authorization` metadata, as any gRPC client sends it.
"""
import json
import sys

import grpc


def encode_count(n):
    out = bytearray(b"\x08")  # field 1, varint
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_string_field(message, wanted):
    """The first length-delimited field `wanted` of a protobuf message."""
    i = 0
    while i < len(message):
        key = message[i]
        i += 1
        field, wire = key >> 3, key & 7
        if wire == 0:
            while message[i] & 0x80:
                i += 1
            i += 1
        elif wire == 2:
            length, shift = 0, 0
            while True:
                b = message[i]
                i += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            if field == wanted:
                return message[i:i + length].decode()
            i += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return ""


def metadata(token):
    return [("authorization", f"Bearer {token}")] if token else []


def failure(error):
    challenge = dict(error.trailing_metadata() or ()).get("www-authenticate")
    return {"code": error.code().name, "details": error.details(), "www_authenticate": challenge}


def whoami(target, token=None):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/svcauth.demo.Demo/WhoAmI")
        try:
            reply = call(b"", metadata=metadata(token), timeout=10)
        except grpc.RpcError as error:
            return failure(error)
        return {"code": "OK", "sub": read_string_field(reply, 2)}


def count(target, token, n):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_stream("/svcauth.demo.Demo/Count")
        try:
            subs = [read_string_field(r, 2) for r in call(encode_count(int(n)), metadata=metadata(token), timeout=10)]
        except grpc.RpcError as error:
            return failure(error)
        return {"code": "OK", "subs": subs}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    print(json.dumps({"whoami": whoami, "count": count}[mode](*args)))
