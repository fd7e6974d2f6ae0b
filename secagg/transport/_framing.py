"""Length-prefixed framing of the secure-aggregation wire protocol over a byte stream
(TCP or TLS), plus the transport's own control frames (hello, welcome, done, abort).

Every frame is ``u32 big-endian length || payload`` (the framing of RFC 1035 §4.2.2 for
DNS over TCP, widened to 32 bits). The length is checked against the receiver's limit
*before* a single payload byte is read or allocated, so a peer claiming a 4 GB frame costs
the receiver four bytes. Payload layout::

    kind u8 | body

``kind`` is :data:`KIND_PROTOCOL` (body = the bytes of one
:mod:`secagg.masking._messages` message, moved verbatim: the transport contains no protocol
logic) or one of the control kinds, whose body is a UTF-8 JSON object:

==============  =============  ==========================================================
kind            direction      body
==============  =============  ==========================================================
``HELLO``       client->server ``{"v": 3, "verify_key": hex32, "id": int|null, "dim": int|null}``
``CHALLENGE``   server->client ``{"v": 3, "session": hex, "nonce": hex32, "id": int|null,
                               "n": int, "dim": int, "registration": "allow-list"|"open",
                               "bound": float|null, "out_of_range": "raise"|"clip"}``
``AUTH``        client->server ``{"signature": hex64}`` over
                               :func:`secagg.transport._identity.registration_payload`
``REGISTERED``  server->client ``{"id": int, "n": int, "registered": int}``
``WELCOME``     server->client assigned ``id``, session config, graph seed, key directory
``DONE``        server->client ``{"survivors": [...], "dropped": {id: round}, "status": "ok"}``
``ABORT``       either way     ``{"reason": str, "code": str}`` (the sender closes next)
==============  =============  ==========================================================

Registration is HELLO, CHALLENGE, AUTH, REGISTERED; the WELCOME follows when the session
starts. The version (:data:`TRANSPORT_VERSION`) and the vector length are checked at the
HELLO, and the CHALLENGE announces the per-coordinate bound, so a mismatch or an input
out of range is reported at once. :func:`sniff` recognizes a peer that speaks
something else (TLS, HTTP, SSH) from its first bytes.

Only :class:`secagg.errors.DecodeError` is raised for malformed frames.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from ..errors import ConfigurationError, DecodeError

__all__ = [
    "HEADER",
    "KIND_PROTOCOL",
    "KIND_HELLO",
    "KIND_CHALLENGE",
    "KIND_AUTH",
    "KIND_REGISTERED",
    "KIND_WELCOME",
    "KIND_DONE",
    "KIND_ABORT",
    "CONTROL_KINDS",
    "TRANSPORT_VERSION",
    "max_frame_size",
    "encode_frame",
    "read_frame",
    "write_frame",
    "control_payload",
    "parse_control",
    "split_payload",
    "sniff",
]

HEADER = struct.Struct(">I")
#: version of the control-frame vocabulary (carried in HELLO and CHALLENGE); 2 added
#: authenticated registration (CHALLENGE, AUTH, REGISTERED); 3 replaced the WELCOME's
#: ``clip`` by ``bound`` and ``out_of_range`` (a client refuses out-of-range input instead
#: of clipping it silently, so a version-2 client must not join a version-3 session)
TRANSPORT_VERSION = 3

KIND_PROTOCOL = 0x01
KIND_HELLO = 0x10
KIND_WELCOME = 0x11
KIND_DONE = 0x12
KIND_ABORT = 0x13
KIND_CHALLENGE = 0x14
KIND_AUTH = 0x15
KIND_REGISTERED = 0x16
CONTROL_KINDS = frozenset(
    {KIND_HELLO, KIND_WELCOME, KIND_DONE, KIND_ABORT, KIND_CHALLENGE, KIND_AUTH, KIND_REGISTERED}
)
#: largest registration frame (HELLO, CHALLENGE, AUTH, REGISTERED, a refusal): small JSON
HANDSHAKE_MAX_FRAME = 4096
_KINDS = CONTROL_KINDS | {KIND_PROTOCOL}

#: bytes reserved per party for list entries (key broadcasts ~135 B, share ciphertexts
#: ~115 B, unmasking shares ~45 B, directory entries in WELCOME ~80 B) with slack
_PER_PARTY = 256
#: fixed slack: headers, session id, bitmaps of small sessions, JSON keys
_SLACK = 8192
#: hard ceiling whatever the session (1 GiB)
ABSOLUTE_MAX_FRAME = 1 << 30


def max_frame_size(n: int, dim: int, bits: int = 32) -> int:
    """Largest frame a session of ``n`` clients and ``dim``-element vectors in a
    ``bits``-bit ring can legitimately need, in bytes.

    The bound covers the masked input (``dim`` elements of 4 or 8 bytes), per-party lists
    (``256 * n`` bytes: key broadcasts, share ciphertexts, complaints, directory), two
    party bitmaps, the key-transcript proof (at most ``4 (log2 n + 1)`` hashes) and 8 KiB
    of headers. Use it as the receive limit on both sides.

    Raises :class:`ConfigurationError` for non-positive sizes.
    """
    if n < 1 or dim < 1 or not 2 <= bits <= 64:
        raise ConfigurationError(f"max_frame_size needs n >= 1, dim >= 1, bits in 2..64; got {n}, {dim}, {bits}")
    item = 4 if bits <= 32 else 8
    proof = 4 * 32 * (int(n).bit_length() + 1)  # key-transcript inclusion proof (two runs of leaves)
    size = _SLACK + item * int(dim) + _PER_PARTY * (int(n) + 1) + 2 * (int(n) // 8 + 1) + proof
    return min(size, ABSOLUTE_MAX_FRAME)


def encode_frame(kind: int, body: bytes, max_size: int | None = None) -> bytes:
    """``u32 length || kind || body``. Raises :class:`DecodeError` if the payload would
    exceed ``max_size`` (the peer would reject it) or ``kind`` is unknown."""
    if kind not in _KINDS:
        raise DecodeError(f"unknown frame kind {kind:#x}")
    size = 1 + len(body)
    limit = ABSOLUTE_MAX_FRAME if max_size is None else max_size
    if size > limit:
        raise DecodeError(f"frame of {size} bytes exceeds the limit of {limit} bytes")
    return HEADER.pack(size) + bytes((kind,)) + body


async def read_frame(reader: asyncio.StreamReader, max_size: int) -> bytes:
    """Read one frame's payload (``kind || body``) from ``reader``.

    The 4-byte length is checked against ``max_size`` before the payload is read, so an
    oversized claim never allocates. Raises :class:`DecodeError` for an empty or oversized
    frame and :class:`asyncio.IncompleteReadError` if the stream ends mid-frame (an EOF
    before the header yields ``IncompleteReadError`` with ``partial == b""``).
    """
    header = await reader.readexactly(HEADER.size)
    (size,) = HEADER.unpack(header)
    if size == 0:
        raise DecodeError("empty frame (a frame carries at least its kind byte)")
    if size > max_size:
        raise DecodeError(f"frame of {size} bytes announced, above the limit of {max_size} bytes")
    return await reader.readexactly(size)


async def write_frame(writer: asyncio.StreamWriter, kind: int, body: bytes) -> None:
    """Write one frame and wait until the transport's buffer drained."""
    writer.write(encode_frame(kind, body))
    await writer.drain()


def split_payload(payload: bytes) -> tuple[int, bytes]:
    """``(kind, body)`` of a frame payload; raises :class:`DecodeError` for an unknown kind."""
    if not payload:
        raise DecodeError("empty frame payload")
    kind = payload[0]
    if kind not in _KINDS:
        raise DecodeError(f"unknown frame kind {kind:#x}")
    return kind, payload[1:]


def control_payload(obj: dict[str, Any]) -> bytes:
    """JSON body of a control frame (compact, UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def parse_control(body: bytes, what: str) -> dict[str, Any]:
    """Parse a control frame body into a dict; raises :class:`DecodeError` if it is not a
    UTF-8 JSON object."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DecodeError(f"{what} frame is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} frame must be a JSON object, got {type(obj).__name__}")
    return obj


_HTTP_STARTS = (b"HTTP/", b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"PRI ")


def sniff(first: bytes) -> str:
    """Guess what a peer speaks from the first bytes it sent (at least 4 for a verdict).

    Returns ``"tls"`` (a TLS record: ``0x16 0x03`` handshake or ``0x15 0x03`` alert),
    ``"http"``, ``"ssh"``, ``"secagg"`` (a plausible frame header: a length up to the
    handshake limit followed by a known kind), or ``"unknown"``.
    """
    if len(first) >= 2 and first[0] in (0x15, 0x16) and first[1] == 0x03:
        return "tls"
    if first.startswith(_HTTP_STARTS):
        return "http"
    if first.startswith(b"SSH-"):
        return "ssh"
    if len(first) >= 4:
        (size,) = HEADER.unpack_from(first)
        if 0 < size <= ABSOLUTE_MAX_FRAME and (len(first) < 5 or first[4] in _KINDS):
            return "secagg"
    return "unknown"


def printable(data: bytes, limit: int = 40) -> str:
    """The first ``limit`` bytes of ``data`` for a message: text if printable, else hex."""
    head = data[:limit]
    text = head.decode("latin-1")
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return repr(text.split("\r\n")[0].split("\n")[0])
    return head.hex()
