"""Length-prefixed framing: round trips, limits checked before the payload is read."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg.errors import ConfigurationError, DecodeError
from secagg.masking import simulate_ring
from secagg.transport._framing import (
    KIND_HELLO,
    KIND_PROTOCOL,
    control_payload,
    encode_frame,
    max_frame_size,
    parse_control,
    read_frame,
    split_payload,
)


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    if eof:
        r.feed_eof()
    return r


@settings(deadline=None, max_examples=40)
@given(body=st.binary(max_size=2000), kind=st.sampled_from([KIND_PROTOCOL, KIND_HELLO]))
def test_frame_round_trip(body, kind):
    frame = encode_frame(kind, body)
    assert struct.unpack(">I", frame[:4])[0] == len(body) + 1

    async def go():
        return await read_frame(_reader(frame + frame), 4096)

    payload = asyncio.run(go())
    assert split_payload(payload) == (kind, body)


def test_oversized_frame_rejected_before_payload():
    # only the header is available and the stream stays open: if read_frame tried to read
    # the announced payload it would block and the wait_for would time out instead
    async def go():
        r = _reader(struct.pack(">I", 2**31), eof=False)
        return await asyncio.wait_for(read_frame(r, 1 << 20), 2.0)

    with pytest.raises(DecodeError, match="above the limit"):
        asyncio.run(go())


def test_empty_frame_and_unknown_kind_rejected():
    async def empty():
        return await read_frame(_reader(struct.pack(">I", 0)), 100)

    with pytest.raises(DecodeError, match="empty frame"):
        asyncio.run(empty())
    with pytest.raises(DecodeError, match="unknown frame kind"):
        split_payload(b"\x7fabc")
    with pytest.raises(DecodeError, match="unknown frame kind"):
        encode_frame(0x7F, b"")
    with pytest.raises(DecodeError, match="exceeds the limit"):
        encode_frame(KIND_PROTOCOL, b"x" * 100, max_size=50)


def test_truncated_frame_is_incomplete_read():
    frame = encode_frame(KIND_PROTOCOL, b"abcdef")

    async def go():
        return await read_frame(_reader(frame[:-2]), 100)

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(go())


def test_control_payload_parsing():
    assert parse_control(control_payload({"a": 1, "b": [1, 2]}), "X") == {"a": 1, "b": [1, 2]}
    with pytest.raises(DecodeError, match="JSON object"):
        parse_control(b"[1, 2]", "X")
    with pytest.raises(DecodeError, match="not UTF-8 JSON"):
        parse_control(b"\xff\xfe", "X")


@pytest.mark.parametrize("graph,n,dim,bits", [("complete", 12, 300, 32), ("sparse", 30, 50, 40)])
def test_max_frame_size_covers_every_real_message(graph, n, dim, bits):
    dt = np.uint32 if bits <= 32 else np.uint64
    from secagg.masking import ThreatModel

    # a degree-4 graph over 30 clients reaches only about 2^-4.7: state it
    res = simulate_ring(np.zeros((n, dim), dtype=dt), bits=bits, graph=graph, k=4 if graph == "sparse" else None,
                        threat=ThreatModel(security_bits=4))
    largest = max(
        max(int(a.max()) for a in res.bytes_sent.values()),
        max(int(a.max()) for a in res.bytes_received.values()),
    )
    limit = max_frame_size(n, dim, bits)
    assert largest + 1 <= limit  # +1: the kind byte
    # and the limit is tight enough to matter: well below 10x the masked input
    assert limit < 10 * (dim * np.dtype(dt).itemsize) + 300 * n + 10_000


def test_max_frame_size_validates():
    with pytest.raises(ConfigurationError):
        max_frame_size(0, 10)


@pytest.mark.parametrize(
    "first,verdict",
    [
        (b"\x16\x03\x01\x02\x00\x01", "tls"),  # ClientHello record
        (bytes.fromhex("15030300020246"), "tls"),  # alert record
        (b"HTTP/1.1 400 Bad Request", "http"),
        (b"GET / HTTP/1.1", "http"),
        (b"SSH-2.0-OpenSSH", "ssh"),
        (b"\x00\x00\x00\x20\x10{", "secagg"),
        (b"\x00\x00\x00\x20\x99{", "unknown"),  # unknown kind
        (b"\x7f\xff\xff\xff", "unknown"),  # 2 GB: not a frame
        (b"\x00\x00", "unknown"),  # too short to tell
    ],
)
def test_sniff_recognizes_what_a_peer_speaks(first, verdict):
    from secagg.transport._framing import sniff

    assert sniff(first) == verdict


def test_printable_shows_text_as_text_and_bytes_as_hex():
    from secagg.transport._framing import printable

    assert printable(b"HTTP/1.1 400 Bad Request\r\nServer: x") == "'HTTP/1.1 400 Bad Request'"
    assert printable(bytes(range(4))) == "00010203"
