"""Packed fixed-point encoding: many quantized values per Paillier plaintext (BatchCrypt-style).

BatchCrypt (Zhang et al., USENIX ATC 2020) showed that packing quantized values into one
plaintext divides the cost of homomorphic encryption by the number of values packed.
This module computes the layout and does the packing with vectorized NumPy.

Layout. A :class:`~secagg.quantize.Quantizer` maps each float to a signed integer
``v in [-q_max, q_max]`` where ``q_max = floor((2^(bits-1) - 1) / num_clients)``. The
offset encoding ``u = v + q_max in [0, 2 q_max]`` is non-negative, so a sum of ``k``
summands lies in ``[0, 2 k q_max]``; a slot of

    slot_bits = bit_length(num_clients * 2 * q_max)        (<= bits)

bits therefore holds ``num_clients`` summands without carrying into its neighbour. A
plaintext ``m < n`` holds ``slots = floor((bit_length(n) - 1) / slot_bits)`` slots, slot
``j`` at bits ``[j*slot_bits, (j+1)*slot_bits)`` (little-endian)::

    m = u_0 + u_1 * 2^s + u_2 * 2^(2s) + ... + u_{slots-1} * 2^((slots-1) s) < 2^(bit_length(n)-1) <= n

The one-bit margin (``bit_length(n) - 1``) is all that is needed because the summand
count is tracked and checked before every addition (:class:`SumOverflowError`), so no
slot and no plaintext ever wraps. Slot ``j`` of the sum of ``k`` vectors holds
``sum_i v_i + k q_max``; :func:`unpack` returns it and the caller subtracts ``k q_max``.

Packing builds ONE Python integer per ciphertext from a little-endian byte buffer
(``int.from_bytes``); unpacking goes back with ``int.to_bytes`` -> ``np.frombuffer`` ->
byte/bit reshaping. There is no per-value Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import gmpy2
import numpy as np

from ..errors import ConfigurationError, InputError, IntegrityError
from ..quantize import Quantizer

__all__ = ["PackingLayout", "layout_for", "pack", "unpack", "offset_encode"]

#: ciphertexts packed per NumPy chunk (bounds the temporary bit arrays)
_CHUNK = 512


@dataclass(frozen=True)
class PackingLayout:
    """Where values sit in a plaintext.

    Attributes
    ----------
    slot_bits:
        bits per slot (1..64).
    slots:
        slots (values) per plaintext/ciphertext.
    dim:
        vector length ``d``.
    """

    slot_bits: int
    slots: int
    dim: int

    def __post_init__(self) -> None:
        if not 1 <= self.slot_bits <= 64:
            raise ConfigurationError(f"slot_bits must be in [1, 64], got {self.slot_bits}")
        if self.slots < 1:
            raise ConfigurationError("a plaintext must hold at least one slot; use a larger key or fewer bits")
        if self.dim < 1:
            raise InputError(f"vectors must have at least one element, got dim={self.dim}")

    @property
    def num_ciphertexts(self) -> int:
        """``ceil(dim / slots)``."""
        return -(-self.dim // self.slots)

    @property
    def plaintext_bits(self) -> int:
        """Bits used in each plaintext (``slots * slot_bits``)."""
        return self.slots * self.slot_bits

    @property
    def _nbytes(self) -> int:
        return -(-self.plaintext_bits // 8)


def slot_bits_for(quantizer: Quantizer) -> int:
    """Slot width for ``quantizer``: ``bit_length(num_clients * 2 * q_max)``."""
    return int(quantizer.num_clients * 2 * quantizer.q_max).bit_length()


def layout_for(quantizer: Quantizer, n_bits: int, dim: int) -> PackingLayout:
    """The layout for vectors of length ``dim`` under a modulus of ``n_bits`` bits.

    Raises :class:`ConfigurationError` if not even one slot fits in ``n_bits - 1`` bits.
    """
    if not isinstance(quantizer, Quantizer):
        raise InputError(f"quantizer must be a secagg.quantize.Quantizer, got {type(quantizer).__name__}")
    sb = slot_bits_for(quantizer)
    slots = (int(n_bits) - 1) // sb
    if slots < 1:
        raise ConfigurationError(f"a {sb}-bit slot does not fit under a {n_bits}-bit modulus")
    return PackingLayout(slot_bits=sb, slots=slots, dim=int(dim))


def offset_encode(ints: np.ndarray, quantizer: Quantizer) -> np.ndarray:
    """Signed quantized ints in ``[-q_max, q_max]`` -> offset values ``v + q_max`` (uint64).

    Raises :class:`InputError` for values outside the quantizer's range.
    """
    arr = np.asarray(ints)
    if arr.dtype.kind not in "iu":
        raise InputError(f"quantized values must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.size and (int(arr.min()) < -quantizer.q_max or int(arr.max()) > quantizer.q_max):
        raise InputError(
            f"quantized values must lie in [-{quantizer.q_max}, {quantizer.q_max}] for this quantizer, "
            f"got [{int(arr.min())}, {int(arr.max())}]"
        )
    return (arr + quantizer.q_max).astype(np.uint64)


def pack(values: np.ndarray, layout: PackingLayout) -> list[gmpy2.mpz]:
    """Pack non-negative ``values`` (uint64, shape ``(dim,)``, each ``< 2^slot_bits``) into plaintexts.

    Returns ``layout.num_ciphertexts`` integers (``gmpy2.mpz``), each ``< 2^plaintext_bits``.
    """
    vals = np.asarray(values, dtype=np.uint64).ravel()
    if vals.size != layout.dim:
        raise InputError(f"expected {layout.dim} values, got {vals.size}")
    if layout.slot_bits < 64 and vals.size and int(vals.max()) >> layout.slot_bits:
        raise InputError(f"values must fit in {layout.slot_bits}-bit slots")
    padded = np.zeros(layout.num_ciphertexts * layout.slots, dtype="<u8")
    padded[: vals.size] = vals
    out: list[gmpy2.mpz] = []
    from_bytes = gmpy2.mpz.from_bytes
    step = _CHUNK * layout.slots
    for start in range(0, padded.size, step):
        rows = _pack_rows(padded[start : start + step].reshape(-1, layout.slots), layout)
        out.extend(from_bytes(row, "little") for row in rows)
    return out


def _pack_rows(chunk: np.ndarray, layout: PackingLayout) -> list[bytes]:
    """(rows, slots) uint64 -> one little-endian byte string per row."""
    sb = layout.slot_bits
    rows = chunk.shape[0]
    as_bytes = chunk.view(np.uint8).reshape(rows, layout.slots, 8)
    if sb % 8 == 0:  # byte-aligned slots: just drop the unused high bytes
        buf = np.ascontiguousarray(as_bytes[:, :, : sb // 8]).reshape(rows, -1)
    else:
        bits = np.unpackbits(as_bytes, axis=2, bitorder="little")[:, :, :sb].reshape(rows, -1)
        buf = np.packbits(bits, axis=1, bitorder="little")
    return [bytes(r) for r in buf]


def unpack(plaintexts, layout: PackingLayout) -> np.ndarray:
    """Inverse of :func:`pack`: plaintext integers -> slot values (uint64, shape ``(dim,)``).

    Raises :class:`IntegrityError` if a plaintext has bits above ``layout.plaintext_bits``
    (the ciphertext was corrupted, or was encrypted with another layout or key).
    """
    pts = list(plaintexts)
    if len(pts) != layout.num_ciphertexts:
        raise InputError(f"expected {layout.num_ciphertexts} plaintexts, got {len(pts)}")
    nb = layout._nbytes
    limit = layout.plaintext_bits
    for m in pts:
        if m < 0 or gmpy2.bit_length(m) > limit:
            raise IntegrityError(
                "a decrypted plaintext lies outside the packing layout: the ciphertext was "
                "corrupted or was not produced for this key and encoding"
            )
    sb = layout.slot_bits
    out = np.empty(len(pts) * layout.slots, dtype=np.uint64)
    for start in range(0, len(pts), _CHUNK):
        part = pts[start : start + _CHUNK]
        buf = np.frombuffer(b"".join(gmpy2.mpz(m).to_bytes(nb, "little") for m in part), dtype=np.uint8)
        rows = len(part)
        buf = buf.reshape(rows, nb)
        if sb % 8 == 0:
            sbytes = sb // 8
            slot_bytes = buf[:, : layout.slots * sbytes].reshape(rows * layout.slots, sbytes)
        else:
            bits = np.unpackbits(buf, axis=1, bitorder="little")[:, :limit].reshape(rows * layout.slots, sb)
            slot_bytes = np.packbits(bits, axis=1, bitorder="little")
        wide = np.zeros((rows * layout.slots, 8), dtype=np.uint8)
        wide[:, : slot_bytes.shape[1]] = slot_bytes
        out[start * layout.slots : (start + rows) * layout.slots] = wide.view("<u8").ravel()
    return out[: layout.dim]
