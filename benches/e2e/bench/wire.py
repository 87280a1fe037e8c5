"""The Kafka wire protocol, just enough for Metadata: a readiness probe and the
Metadata latency scenario."""

import struct

from .processes import Failed


def _kstring(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def metadata_request(sock, correlation_id, topics):
    """Sends Metadata v4 for `topics` (None: all) and returns the response body."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(_kstring(t) for t in topics)
    body += b"\x00"  # allow_auto_topic_creation = false
    header = struct.pack(">hhi", 3, 4, correlation_id) + _kstring("e2e-bench")
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation_id:
        raise Failed("metadata: correlation id mismatch")
    return data[4:]


def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def broker_count(body):
    # throttle_time_ms int32, then the brokers array's length
    return struct.unpack(">i", body[4:8])[0]
