"""Hostile Kafka clients at the byte level, for memory_ceiling.py: record
batches built by hand (decompression bombs, batches that decompress to tens
of MiB), raw request frames, and connections from a source address of their
own that need not read what they are sent.

Only what the ceiling test sends is here: Produce v7, ListOffsets v1, Fetch
v4, ApiVersions v0 and a Metadata v1 whose array count lies.
"""

import socket
import struct
import zlib

import zstandard

# Kafka's codec ids (the low three bits of a batch's attributes).
NONE, GZIP, SNAPPY, ZSTD = 0, 1, 2, 4

# Kafka error codes the test expects.
MESSAGE_TOO_LARGE = 10
INVALID_RECORD = 87


# -- record batches (magic 2) ------------------------------------------------

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(n):
    """Kafka's zigzag varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        if z < 0x80:
            out.append(z)
            return bytes(out)
        out.append((z & 0x7F) | 0x80)
        z >>= 7


def record_head(index, value_len):
    """A record up to its value: length, attributes, timestamp delta (its
    index), offset delta (its index), no key, the value's length. The value
    and a header count of 0 follow."""
    body_len = (1 + len(varint(index)) * 2 + len(varint(-1)) + len(varint(value_len))
                + value_len + len(varint(0)))
    return (varint(body_len) + b"\x00" + varint(index) + varint(index) + varint(-1)
            + varint(value_len))


def record(index, value):
    return record_head(index, len(value)) + value + varint(0)


def batch(codec, body, count, base_timestamp):
    """A batch of `count` records whose (possibly compressed) records are
    `body`; record i has timestamp base_timestamp + i."""
    after_crc = (struct.pack(">hiqqqhii", codec, count - 1, base_timestamp, base_timestamp + count - 1,
                             -1, -1, -1, count) + body)
    after_length = struct.pack(">ibI", 0, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def compressed_zeros(codec, count, value_len, base_timestamp):
    """A batch of `count` records of `value_len` zero bytes each, compressed as
    a stream (never held whole here): count * value_len bytes decompressed
    from a few KiB (zstd) or a thousandth of that (gzip)."""
    if codec == ZSTD:
        compressor = zstandard.ZstdCompressor(level=1).compressobj()
    elif codec == GZIP:
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    else:
        raise ValueError(codec)
    zeros = bytes(value_len)
    parts = []
    for i in range(count):
        parts.append(compressor.compress(record_head(i, value_len)))
        parts.append(compressor.compress(zeros))
        parts.append(compressor.compress(varint(0)))
    parts.append(compressor.flush())
    return batch(codec, b"".join(parts), count, base_timestamp)


def snappy_zeros(count, value_len, base_timestamp, claimed_count=None):
    """Like compressed_zeros, in snappy as one raw block (as librdkafka writes
    a batch): the block is built and compressed whole, about a 21st of its
    size on the wire. `claimed_count` puts another record count in the
    header, which the validator finds out only at the block's end."""
    import cramjam
    zeros = bytes(value_len)
    records = b"".join(record(i, zeros) for i in range(count))
    return batch(SNAPPY, bytes(cramjam.snappy.compress_raw(records)), claimed_count or count, base_timestamp)


def snappy_claim(claimed, base_timestamp):
    """A snappy batch written as one raw block (as librdkafka writes them)
    whose header claims `claimed` bytes decompressed, followed by a few bytes
    that decompress to far less."""
    raw = bytearray()
    n = claimed
    while n >= 0x80:
        raw.append((n & 0x7F) | 0x80)
        n >>= 7
    raw.append(n)
    raw += b"\x0c" + b"abcd"  # a literal of 4 bytes
    return batch(SNAPPY, bytes(raw), 1, base_timestamp)


def plain(values, base_timestamp):
    return batch(NONE, b"".join(record(i, v) for i, v in enumerate(values)), len(values), base_timestamp)


# -- requests ------------------------------------------------------------------

def _string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, correlation_id, body, client_id="hostile"):
    payload = struct.pack(">hhi", api_key, version, correlation_id) + _string(client_id) + body
    return struct.pack(">i", len(payload)) + payload


def produce_v7(correlation_id, topic, partition, records, acks=-1):
    body = (struct.pack(">h", -1) + struct.pack(">hi", acks, 30_000) + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">ii", 1, partition) + struct.pack(">i", len(records)) + records)
    return request(0, 7, correlation_id, body)


def produce_error(response):
    """The error code of a Produce v7 response to one partition."""
    at = 4 + 4  # correlation id, topics count
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4 + 4  # name, partitions count, index
    return struct.unpack_from(">h", response, at)[0]


def list_offsets_v1(correlation_id, topic, partition, timestamp, times=1):
    """ListOffsets v1 naming the partition `times` times."""
    partitions = struct.pack(">iq", partition, timestamp) * times
    body = struct.pack(">ii", -1, 1) + _string(topic) + struct.pack(">i", times) + partitions
    return request(2, 1, correlation_id, body)


def list_offsets_answer(response):
    """(error code, offset) of a ListOffsets v1 response's first partition."""
    at = 4 + 4
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4 + 4
    error, _timestamp, offset = struct.unpack_from(">hqq", response, at)
    return error, offset


def fetch_v4(correlation_id, topic, partition, offset, max_wait_ms, max_bytes):
    """A Fetch asking for up to `max_bytes`, from the response and the partition."""
    body = (struct.pack(">iiiib", -1, max_wait_ms, 1, max_bytes, 0) + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">iiqi", 1, partition, offset, max_bytes))
    return request(1, 4, correlation_id, body)


def api_versions_v0(correlation_id):
    return request(18, 0, correlation_id, b"")


def metadata_lying_count(correlation_id):
    """Metadata v1 claiming 2^31 - 1 topics in the four bytes of its count."""
    return request(3, 1, correlation_id, struct.pack(">i", 0x7FFFFFFF))


# -- connections ---------------------------------------------------------------

class Conn:
    """A connection to the broker from `source` (a loopback address of the
    hostile clients' own, so that --max-connections-per-ip counts them apart
    from the well-behaved client). `rcvbuf` shrinks the receive buffer, so
    that what the client does not read stalls the broker's writes early."""

    def __init__(self, port, source="127.0.0.2", rcvbuf=None, timeout=30.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.correlation_id = 0

    def next_id(self):
        self.correlation_id += 1
        return self.correlation_id

    def send(self, data):
        self.sock.sendall(data)

    def _read_exact(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        """One response frame (its correlation id first), or None if closed."""
        head = self._read_exact(4)
        if head is None:
            return None
        return self._read_exact(struct.unpack(">i", head)[0])

    def call(self, frame):
        self.send(frame)
        return self.receive()

    def closed_by_peer(self, timeout=5.0):
        """Whether the broker closes the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
