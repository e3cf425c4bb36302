"""A protokv client written from SPEC.md alone, in Python, with Google's protobuf runtime.

Usage: python3 python_client.py GENERATED_DIR HOST PORT
Prints one JSON object of what it observed; exits 1 on any mismatch.
"""
import gzip
import json
import socket
import struct
import sys

sys.path.insert(0, sys.argv[1])
import abi_pb2 as abi  # noqa: E402

THRESHOLD = 1436


def send(sock, request):
    payload = request.SerializeToString()
    header = len(payload)
    if len(payload) > THRESHOLD:
        payload = gzip.compress(payload)
        header = 0x80000000 | len(payload)
    sock.sendall(struct.pack(">I", header) + payload)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("server closed the connection")
        data += chunk
    return data


def receive(sock):
    (header,) = struct.unpack(">I", read_exact(sock, 4))
    payload = read_exact(sock, header & 0x7FFFFFFF)
    if header & 0x80000000:
        payload = gzip.decompress(payload)
    response = abi.CommandResponse()
    response.ParseFromString(payload)
    return response


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "binary":
        return {"binary": v.binary.hex()}
    if kind == "integer":
        return {"integer": str(v.integer)}
    return {kind: getattr(v, kind)}


def main():
    sock = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    out = {}
    big = (1 << 62) + 7

    # Pipelined: everything is sent before anything is read.
    requests = []
    r = abi.CommandRequest()
    r.hset.table = "py"
    r.hset.pair.key = "s"
    r.hset.pair.value.string = "from python"
    requests.append(r)
    r = abi.CommandRequest()
    r.hset.table = "py"
    r.hset.pair.key = "i"
    r.hset.pair.value.integer = big
    requests.append(r)
    r = abi.CommandRequest()
    r.hset.table = "py"
    r.hset.pair.key = "large"
    r.hset.pair.value.string = "x" * 5000
    requests.append(r)
    r = abi.CommandRequest()
    r.hmget.table = "py"
    r.hmget.keys.extend(["s", "i", "missing"])
    requests.append(r)
    r = abi.CommandRequest()
    r.hget.table = "py"
    r.hget.key = "nope"
    requests.append(r)
    r = abi.CommandRequest()
    r.hgetall.table = "py"
    requests.append(r)
    requests.append(abi.CommandRequest())  # no command
    for request in requests:
        send(sock, request)
    responses = [receive(sock) for _ in requests]

    out["hset_status"] = [responses[i].status for i in range(3)]
    out["hset_previous"] = [value(responses[i].values[0]) for i in range(3)]
    out["hmget"] = [value(v) for v in responses[3].values]
    out["hget_missing"] = [responses[4].status, responses[4].message]
    out["hgetall"] = sorted((p.key, value(p.value)) for p in responses[5].pairs)
    out["empty_request"] = responses[6].status
    ok = (
        out["hset_status"] == [200, 200, 200]
        and out["hmget"] == [{"string": "from python"}, {"integer": str(big)}, None]
        and out["hget_missing"] == [404, "Not found: table py, key nope"]
        and len(out["hgetall"]) == 3
        and out["empty_request"] == 400
    )
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


main()
