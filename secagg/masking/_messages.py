"""Wire messages of SecAgg / SecAgg+ (Bonawitz et al. CCS 2017, Fig. 4): one frozen
dataclass per message, each with a compact, versioned binary encoding.

Layout of every message (all integers big-endian, fixed width)::

    version u8 (=3) | type u8 | session_len u8 (16..32) | session | fields...

Fields: party ids are ``u32``; keys 32 bytes; vouchers (MACs) 16 bytes; signatures 64 bytes (or absent, flagged by a
``u8``); lists are ``u32 count`` followed by entries; variable byte strings are
``u32 length || bytes``; sets of party ids are bitmaps (``u32 n`` then ``ceil(n/8)``
bytes, ``np.packbits`` big-bit order); masked vectors are ``u8 bits | u32 dim`` then the raw
little-endian ``uint32``/``uint64`` elements. Every count and length is checked against
the bytes actually remaining *before* anything is allocated, so a forged length of 4 GB
raises :class:`~secagg.errors.DecodeError` at once. Decoding never raises anything but
``DecodeError``.

:func:`decode_message` dispatches on the type byte. All byte counts reported by the
simulator are ``len(message.to_bytes())``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Iterable, Iterator, Sequence, TypeVar, Union

import numpy as np

from ..errors import DecodeError, InputError
from ..shamir import PRIME

__all__ = [
    "VERSION",
    "Message",
    "StartSession",
    "AdvertiseKeys",
    "KeysBroadcast",
    "ShareKeys",
    "ForwardShares",
    "MaskedInput",
    "ConsistencyRequest",
    "ConsistencyResponse",
    "UnmaskRequest",
    "UnmaskResponse",
    "decode_message",
    "ids_to_bitmap",
    "bitmap_to_ids",
    "PartySet",
]

VERSION = 3
KEY_LEN = 32
SIG_LEN = 64
HASH_LEN = 32
MAC_LEN = 16
_U32 = struct.Struct(">I")
_M = TypeVar("_M", bound="Message")
_U32x2 = struct.Struct(">II")
#: party ids and set sizes: what Shamir can share to (x = id + 1 < PRIME); also bounds the
#: Python ints a party-set bitmap decodes to
MAX_PARTIES = PRIME - 1


# ----------------------------------------------------------------------------- helpers
class _Reader:
    """Bounds-checked cursor over a bytes object; every failure is a DecodeError."""

    __slots__ = ("buf", "pos", "what")

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = buf
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise DecodeError(
                f"{self.what}: field of {n} bytes at offset {self.pos} exceeds the "
                f"{self.remaining()} bytes remaining (truncated or forged length)"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def count(self, min_entry: int) -> int:
        c = self.u32()
        if c * min_entry > self.remaining():
            raise DecodeError(
                f"{self.what}: {c} entries of at least {min_entry} bytes cannot fit in the "
                f"{self.remaining()} bytes remaining"
            )
        return c

    def blob(self) -> bytes:
        return self.take(self.u32())

    def bitmap(self) -> "PartySet":
        n = self.u32()
        if n > MAX_PARTIES:
            raise DecodeError(f"{self.what}: party set of size {n} exceeds the limit {MAX_PARTIES}")
        raw = self.take((n + 7) // 8)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
        if bits[n:].any():
            raise DecodeError("party bitmap has non-zero padding bits")
        out = PartySet.__new__(PartySet)
        out._set(n, bits[:n].astype(bool))
        return out

    def done(self) -> None:
        if self.remaining():
            raise DecodeError(f"{self.what}: {self.remaining()} unexpected trailing bytes")


def ids_to_bitmap(ids: Iterable[int], n: int) -> bytes:
    """Encode a set of party ids in ``[0, n)`` as ``u32 n || packbits`` bytes.

    Raises :class:`InputError` for ``n`` outside ``0..MAX_PARTIES`` or ids that are not
    integers in ``[0, n)``.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_PARTIES:
        raise InputError(f"a party set has size 0..{MAX_PARTIES}, got {n!r}")
    return PartySet.of(ids, int(n)).bitmap()


def bitmap_to_ids(raw: bytes, n: int) -> tuple[int, ...]:
    """Inverse of the bitmap part of :func:`ids_to_bitmap`; padding bits must be zero."""
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():
        raise DecodeError("party bitmap has non-zero padding bits")
    return tuple(np.flatnonzero(bits[:n]).tolist())


class PartySet:
    """An immutable set of party ids in ``[0, n)``, held as a boolean mask: what a
    survivor or dropped set is on the wire (a bitmap) and in memory. Membership is O(1),
    ``len`` is a popcount, and the bitmap and id tuple are computed once, so one set
    shared by the ``n`` requests of a round costs O(n) in total, not O(n) per client.

    Compares equal to another :class:`PartySet` with the same ``n`` and members, and to
    a tuple/list of its ids in increasing order or a set/frozenset of them.

    Raises :class:`InputError` (ids outside ``[0, n)``, not integers) on construction.
    """

    __slots__ = ("n", "_mask", "_ids", "_bits", "_count")

    def __init__(self, n: int, ids: Iterable[int] = ()) -> None:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_PARTIES:
            raise InputError(f"a party set has size 0..{MAX_PARTIES}, got {n!r}")
        arr = np.asarray(ids if isinstance(ids, (list, tuple, np.ndarray)) else list(ids))
        if arr.size and (arr.ndim != 1 or arr.dtype.kind not in "iu"):
            raise InputError(f"party ids must be a flat sequence of integers, got {arr.dtype} of shape {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise InputError(f"party ids must be in [0, {n}) to fit the bitmap")
        mask = np.zeros(int(n), dtype=bool)
        mask[arr.astype(np.int64)] = True
        self._set(int(n), mask)

    def _set(self, n: int, mask: np.ndarray) -> None:
        mask.flags.writeable = False
        self.n = n
        self._mask = mask
        self._ids: tuple[int, ...] | None = None
        self._bits: bytes | None = None
        self._count = int(np.count_nonzero(mask))

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> "PartySet":
        """The set whose members are the ``True`` entries of a 1-D boolean ``mask`` (copied)."""
        m = np.array(mask, dtype=bool, copy=True)
        if m.ndim != 1 or m.size > MAX_PARTIES:
            raise InputError(f"a party mask is 1-D with at most {MAX_PARTIES} entries, got shape {m.shape}")
        out = cls.__new__(cls)
        out._set(int(m.size), m)
        return out

    @classmethod
    def of(cls, value: "PartySet | Iterable[int]", n: int) -> "PartySet":
        """``value`` itself when it is a PartySet over ``n`` parties, else a new one."""
        if isinstance(value, PartySet):
            if value.n != n:
                raise InputError(f"a party set over {value.n} parties where {n} were expected")
            return value
        return cls(n, value)

    @property
    def mask(self) -> np.ndarray:
        """Read-only ``(n,)`` bool array, ``True`` for members."""
        return self._mask

    @property
    def ids(self) -> tuple[int, ...]:
        """The members in increasing order."""
        if self._ids is None:
            self._ids = tuple(np.flatnonzero(self._mask).tolist())
        return self._ids

    def bitmap(self) -> bytes:
        """The wire encoding: ``u32 n || packbits(mask)`` (big-bit order, zero padding)."""
        if self._bits is None:
            self._bits = _U32.pack(self.n) + np.packbits(self._mask).tobytes()
        return self._bits

    def among(self, ids: np.ndarray) -> list[int]:
        """The entries of the int array ``ids`` (each in ``[0, n)``) that are members, in order."""
        out: list[int] = ids[self._mask[ids]].tolist()
        return out

    def __len__(self) -> int:
        return self._count

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < self.n:
            return False
        return bool(self._mask[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PartySet):
            return self.n == other.n and self.bitmap() == other.bitmap()
        if isinstance(other, (tuple, list)):
            return self.ids == tuple(other)
        if isinstance(other, (set, frozenset)):
            return frozenset(self.ids) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.bitmap())

    def __repr__(self) -> str:
        ids = self.ids
        shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
        return f"PartySet(n={self.n}, {{{shown}}}, size={len(ids)})"


def _check_session(session: bytes) -> bytes:
    if not isinstance(session, (bytes, bytearray)) or not 16 <= len(session) <= 32:
        raise InputError("session id must be 16..32 bytes")
    return bytes(session)


def _check_id(v: object, name: str = "party id") -> int:
    if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < MAX_PARTIES:
        raise InputError(f"{name} must be an integer in [0, {MAX_PARTIES}), got {v!r}")
    return int(v)


def _check_bytes(b: object, n: int | None, name: str) -> bytes:
    if not isinstance(b, (bytes, bytearray)) or (n is not None and len(b) != n):
        raise InputError(f"{name} must be {n if n is not None else 'a'} bytes")
    return bytes(b)


# ----------------------------------------------------------------------------- base
@dataclass(frozen=True)
class Message:
    """Base class: ``session`` (16..32 bytes) is carried by every message."""

    TYPE: ClassVar[int] = 0
    session: bytes

    def _header(self) -> bytes:
        s = _check_session(self.session)
        return bytes((VERSION, self.TYPE, len(s))) + s

    def to_bytes(self) -> bytes:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @classmethod
    def from_bytes(cls: type[_M], data: bytes) -> _M:
        """Decode ``data`` as this message type; raises :class:`DecodeError`."""
        msg = decode_message(data)
        if not isinstance(msg, cls):
            raise DecodeError(f"expected a {cls.__name__} message, got {type(msg).__name__}")
        return msg

    @property
    def kind(self) -> str:
        return type(self).__name__

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> Message:  # pragma: no cover - every subclass overrides
        """The fields after the header (``session`` already read)."""
        raise NotImplementedError


def _mac_list_bytes(entries: Sequence[tuple[int, bytes]]) -> bytes:
    out = [_U32.pack(len(entries))]
    pack = _U32.pack
    for pid, mac in entries:
        if type(pid) is not int or not 0 <= pid < MAX_PARTIES or type(mac) is not bytes or len(mac) != MAC_LEN:
            _check_id(pid)  # the precise error (or a valid numpy int / bytearray: checked again)
            mac = _check_bytes(mac, MAC_LEN, "mac")
        out.append(pack(int(pid)))
        out.append(mac)
    return b"".join(out)


def _read_mac_list(r: _Reader) -> tuple[tuple[int, bytes], ...]:
    size = 4 + MAC_LEN
    c = r.count(size)
    block = r.take(c * size)
    ids = _ids_at(block, c, size)
    return tuple((pid, block[i * size + 4 : (i + 1) * size]) for i, pid in enumerate(ids))


def _ids_at(block: bytes, count: int, stride: int) -> list[int]:
    """The big-endian u32 at the start of each of ``count`` fixed-size entries."""
    if not count:
        return []
    rows = np.frombuffer(block, dtype=np.uint8, count=count * stride).reshape(count, stride)[:, :4]
    ids: list[int] = np.ascontiguousarray(rows).view(">u4").ravel().tolist()
    return ids


def _blob_list_bytes(entries: Sequence[tuple[int, bytes]], name: str) -> bytes:
    out = [_U32.pack(len(entries))]
    pack = _U32x2.pack
    for pid, blob in entries:
        if type(pid) is not int or not 0 <= pid < MAX_PARTIES or type(blob) is not bytes:
            _check_id(pid)  # the precise error (or a valid numpy int / bytearray: checked again)
            blob = _check_bytes(blob, None, name)
        out.append(pack(int(pid), len(blob)))
        out.append(blob)
    return b"".join(out)


def _read_blob_list(r: _Reader) -> tuple[tuple[int, bytes], ...]:
    c = r.count(8)
    buf, pos, end = r.buf, r.pos, len(r.buf)
    unpack = _U32x2.unpack_from
    out = []
    for _ in range(c):
        if pos + 8 > end:
            r.pos = pos
            r.take(8)  # raises the DecodeError naming the offset
        pid, n = unpack(buf, pos)
        pos += 8
        if pos + n > end:
            r.pos = pos
            r.take(n)
        out.append((pid, buf[pos : pos + n]))
        pos += n
    r.pos = pos
    return tuple(out)


# ----------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class StartSession(Message):
    """Server -> client ``recipient``: a session with id ``session`` starts (advertise_keys)."""

    TYPE: ClassVar[int] = 1
    recipient: int

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(_check_id(self.recipient))

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "StartSession":
        return cls(session, r.u32())


@dataclass(frozen=True)
class AdvertiseKeys(Message):
    """Client -> server: the two X25519 public keys of ``sender`` and, in the active
    variant, its Ed25519 signature over ``(session, sender, c_pk, s_pk)`` (else ``b""``)."""

    TYPE: ClassVar[int] = 2
    sender: int
    c_pk: bytes
    s_pk: bytes
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        sig = _check_bytes(self.signature, None, "signature")
        if len(sig) not in (0, SIG_LEN):
            raise InputError(f"signature must be empty or {SIG_LEN} bytes")
        return (
            self._header()
            + _U32.pack(_check_id(self.sender))
            + _check_bytes(self.c_pk, KEY_LEN, "c_pk")
            + _check_bytes(self.s_pk, KEY_LEN, "s_pk")
            + bytes((1 if sig else 0,))
            + sig
        )

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "AdvertiseKeys":
        sender, c_pk, s_pk = r.u32(), r.take(KEY_LEN), r.take(KEY_LEN)
        flag = r.u8()
        if flag > 1:
            raise DecodeError(f"AdvertiseKeys: signature flag must be 0 or 1, got {flag}")
        return cls(session, sender, c_pk, s_pk, r.take(SIG_LEN) if flag else b"")


@dataclass(frozen=True)
class KeysBroadcast(Message):
    """Server -> client ``recipient``: the advertised keys of its live neighbours, and the
    Merkle inclusion proof that ties them (and the recipient's own keys) to the root over
    every client's advertised keys (:mod:`secagg.masking._transcript`).

    ``entries``: tuple of ``(party id, c_pk, s_pk, signature)``; signatures are all
    present (active variant) or all ``b""``. ``proof``: tuple of 32-byte node hashes.
    """

    TYPE: ClassVar[int] = 3
    recipient: int
    entries: tuple[tuple[int, bytes, bytes, bytes], ...]
    proof: tuple[bytes, ...] = ()

    def to_bytes(self) -> bytes:
        signed = bool(self.entries) and bool(self.entries[0][3])
        out = [self._header(), _U32.pack(_check_id(self.recipient)), bytes((int(signed),)), _U32.pack(len(self.entries))]
        for pid, c_pk, s_pk, sig in self.entries:
            if bool(sig) != signed:
                raise InputError("KeysBroadcast entries must all carry a signature or none")
            out.append(
                _U32.pack(_check_id(pid))
                + _check_bytes(c_pk, KEY_LEN, "c_pk")
                + _check_bytes(s_pk, KEY_LEN, "s_pk")
                + (_check_bytes(sig, SIG_LEN, "signature") if signed else b"")
            )
        out.append(_U32.pack(len(self.proof)))
        out.extend(_check_bytes(h, HASH_LEN, "proof hash") for h in self.proof)
        return b"".join(out)

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "KeysBroadcast":
        recipient, signed = r.u32(), r.u8()
        if signed > 1:
            raise DecodeError(f"KeysBroadcast: signature flag must be 0 or 1, got {signed}")
        size = 4 + 2 * KEY_LEN + (SIG_LEN if signed else 0)
        c = r.count(size)
        block = r.take(c * size)
        k1, k2 = 4 + KEY_LEN, 4 + 2 * KEY_LEN
        entries = tuple(
            (pid, block[o + 4 : o + k1], block[o + k1 : o + k2], block[o + k2 : o + size])
            for pid, o in zip(_ids_at(block, c, size), range(0, c * size, size))
        )
        p = r.count(HASH_LEN)
        return cls(session, recipient, entries, tuple(r.take(HASH_LEN) for _ in range(p)))


@dataclass(frozen=True)
class ShareKeys(Message):
    """Client -> server: ``ciphertexts`` = tuple of ``(recipient id, AEAD ciphertext)`` of
    ``sender``'s shares of its self-mask seed and mask private key, one per holder."""

    TYPE: ClassVar[int] = 4
    sender: int
    ciphertexts: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(_check_id(self.sender)) + _blob_list_bytes(self.ciphertexts, "ciphertext")

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "ShareKeys":
        return cls(session, r.u32(), _read_blob_list(r))


@dataclass(frozen=True)
class ForwardShares(Message):
    """Server -> client ``recipient``: ``ciphertexts`` = tuple of ``(sender id, ciphertext)``
    addressed to it."""

    TYPE: ClassVar[int] = 5
    recipient: int
    ciphertexts: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(_check_id(self.recipient)) + _blob_list_bytes(self.ciphertexts, "ciphertext")

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "ForwardShares":
        return cls(session, r.u32(), _read_blob_list(r))


@dataclass(frozen=True, eq=False)
class MaskedInput(Message):
    """Client -> server: the masked vector ``y_u`` (1-D uint32/uint64, ring ``Z_2^bits``),
    the commitment ``b_commit`` to its self-mask seed (the server checks the seed it
    rebuilds against it, so a wrong share cannot silently change the sum), and
    ``complaints``: ids of neighbours whose share ciphertext failed authentication (the
    sender did not mask with them; the server excludes them)."""

    TYPE: ClassVar[int] = 6
    sender: int
    bits: int
    vector: np.ndarray
    b_commit: bytes = bytes(HASH_LEN)
    complaints: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        v = np.asarray(self.vector)
        width = 32 if self.bits <= 32 else 64
        if v.ndim != 1 or v.dtype != np.dtype(f"uint{width}"):
            raise InputError(f"masked vector must be 1-D uint{width} for a {self.bits}-bit ring")
        return (
            self._header()
            + _U32.pack(_check_id(self.sender))
            + _check_bytes(self.b_commit, HASH_LEN, "b_commit")
            + _U32.pack(len(self.complaints))
            + b"".join(_U32.pack(_check_id(c, "complaint id")) for c in self.complaints)
            + bytes((int(self.bits),))
            + _U32.pack(v.size)
            + v.astype(f"<u{width // 8}", copy=False).tobytes()
        )

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "MaskedInput":
        sender, b_commit = r.u32(), r.take(HASH_LEN)
        complaints = tuple(r.u32() for _ in range(r.count(4)))
        bits, dim = r.u8(), r.u32()
        if not 2 <= bits <= 64:
            raise DecodeError(f"MaskedInput: ring bits must be in 2..64, got {bits}")
        item = 4 if bits <= 32 else 8
        raw = r.take(dim * item)
        vec = np.frombuffer(raw, dtype=f"<u{item}").astype(np.uint32 if item == 4 else np.uint64)
        return cls(session, sender, bits, vec, b_commit, complaints)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskedInput) and self.to_bytes() == other.to_bytes()

    # defining __eq__ makes the class unhashable (a numpy vector has no hash)


@dataclass(frozen=True)
class ConsistencyRequest(Message):
    """Server -> client ``recipient``: the survivor set U3 (clients whose masked input
    arrived) out of ``n`` clients; the client signs it (active variant)."""

    TYPE: ClassVar[int] = 7
    recipient: int
    n: int
    survivors: PartySet  # any iterable of ids is converted

    def __post_init__(self) -> None:
        object.__setattr__(self, "survivors", PartySet.of(self.survivors, self.n))

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(_check_id(self.recipient)) + self.survivors.bitmap()

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "ConsistencyRequest":
        recipient = r.u32()
        n = _U32.unpack(r.buf[r.pos : r.pos + 4])[0] if r.remaining() >= 4 else 0
        return cls(session, recipient, n, r.bitmap())


@dataclass(frozen=True)
class ConsistencyResponse(Message):
    """Client -> server: ``sender``'s vouchers for the survivor set U3 it was shown, one
    per neighbour: ``macs`` = ``(neighbour id, 16-byte MAC)`` under the key ``sender``
    shares with that neighbour in this session (the server cannot forge or move them)."""

    TYPE: ClassVar[int] = 8
    sender: int
    macs: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(_check_id(self.sender)) + _mac_list_bytes(self.macs)

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "ConsistencyResponse":
        return cls(session, r.u32(), _read_mac_list(r))


@dataclass(frozen=True)
class UnmaskRequest(Message):
    """Server -> client ``recipient``: reveal self-mask shares of ``survivors`` (U3) and
    mask-key shares of ``dropped`` (U2 minus U3); ``macs`` = ``(holder id, MAC)``: the
    vouchers for U3 that the recipient's holders addressed to it in the consistency check
    (active variant)."""

    TYPE: ClassVar[int] = 9
    recipient: int
    n: int
    survivors: PartySet  # any iterable of ids is converted
    dropped: PartySet
    macs: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "survivors", PartySet.of(self.survivors, self.n))
        object.__setattr__(self, "dropped", PartySet.of(self.dropped, self.n))

    def to_bytes(self) -> bytes:
        return (
            self._header()
            + _U32.pack(_check_id(self.recipient))
            + self.survivors.bitmap()
            + self.dropped.bitmap()
            + _mac_list_bytes(self.macs)
        )

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "UnmaskRequest":
        recipient = r.u32()
        n = _U32.unpack(r.buf[r.pos : r.pos + 4])[0] if r.remaining() >= 4 else 0
        survivors = r.bitmap()
        if r.remaining() >= 4 and _U32.unpack(r.buf[r.pos : r.pos + 4])[0] != n:
            raise DecodeError("UnmaskRequest: survivor and dropped bitmaps have different sizes")
        dropped = r.bitmap()
        return cls(session, recipient, n, survivors, dropped, _read_mac_list(r))


@dataclass(frozen=True)
class UnmaskResponse(Message):
    """Client -> server: ``self_shares`` = ``(owner id, share bytes)`` of survivors'
    self-mask seeds, ``key_shares`` = ``(owner id, share bytes)`` of dropped clients'
    mask private keys. Share bytes: :func:`secagg.shamir.encode_share_values` of one
    ``(1, L)`` row."""

    TYPE: ClassVar[int] = 10
    sender: int
    self_shares: tuple[tuple[int, bytes], ...]
    key_shares: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return (
            self._header()
            + _U32.pack(_check_id(self.sender))
            + _blob_list_bytes(self.self_shares, "share")
            + _blob_list_bytes(self.key_shares, "share")
        )

    @classmethod
    def _read(cls, session: bytes, r: _Reader) -> "UnmaskResponse":
        return cls(session, r.u32(), _read_blob_list(r), _read_blob_list(r))


#: what the server sends (each has a ``recipient``)
ServerMessage = Union[StartSession, KeysBroadcast, ForwardShares, ConsistencyRequest, UnmaskRequest]
#: what a client sends (each has a ``sender``)
ClientMessage = Union[AdvertiseKeys, ShareKeys, MaskedInput, ConsistencyResponse, UnmaskResponse]
AnyMessage = Union[ServerMessage, ClientMessage]

#: type byte -> the class that reads it
_TYPES: dict[int, type[AnyMessage]] = {
    StartSession.TYPE: StartSession,
    AdvertiseKeys.TYPE: AdvertiseKeys,
    KeysBroadcast.TYPE: KeysBroadcast,
    ShareKeys.TYPE: ShareKeys,
    ForwardShares.TYPE: ForwardShares,
    MaskedInput.TYPE: MaskedInput,
    ConsistencyRequest.TYPE: ConsistencyRequest,
    ConsistencyResponse.TYPE: ConsistencyResponse,
    UnmaskRequest.TYPE: UnmaskRequest,
    UnmaskResponse.TYPE: UnmaskResponse,
}


def decode_message(data: bytes) -> AnyMessage:
    """Parse any protocol message; raises :class:`DecodeError` (only) on malformed bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"a message must be bytes, got {type(data).__name__}")
    r = _Reader(bytes(data), "message")
    if r.remaining() < 3:
        raise DecodeError(f"message of {r.remaining()} bytes is shorter than the 3-byte header")
    version, mtype, slen = r.u8(), r.u8(), r.u8()
    if version != VERSION:
        raise DecodeError(f"unsupported message version {version} (this library speaks {VERSION})")
    cls = _TYPES.get(mtype)
    if cls is None:
        raise DecodeError(f"unknown message type byte {mtype}")
    if not 16 <= slen <= 32:
        raise DecodeError(f"session id length must be 16..32, got {slen}")
    r.what = cls.__name__
    session = r.take(slen)
    msg = cls._read(session, r)
    r.done()
    return msg
