"""Encrypted packed vectors: encrypt, add homomorphically, decrypt with CRT, and versioned bytes.

An :class:`EncryptedVector` is a list of Paillier ciphertexts (Paillier, EUROCRYPT 1999,
``g = n + 1``) each holding ``layout.slots`` quantized values (see
:mod:`secagg.paillier.packing`), plus the summand ``count`` it has absorbed. Multiplying
ciphertexts adds plaintexts slot-wise; ``count`` is checked against the quantizer's
``num_clients`` *before* every operation so a slot can never carry into its neighbour.
Decryption uses the Chinese remainder theorem with ``p`` and ``q`` (two half-size
exponentiations mod ``p^2`` and ``q^2``, as in Paillier's paper, Sec. 7) through gmpy2.
"""

from __future__ import annotations

import math
import struct
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import gmpy2
import numpy as np

from ..errors import (
    ConfigurationError,
    DecodeError,
    IncompatibleError,
    InputError,
    IntegrityError,
    SumOverflowError,
)
from ..quantize import Quantizer
from .keys import (
    PaillierPrivateKey,
    PaillierPublicKey,
    check_private_key,
    check_public_key,
    key_fingerprint,
    same_key,
)
from .obfuscation import Encryptor, get_encryptor
from .packing import PackingLayout, layout_for, offset_encode, pack, unpack

__all__ = [
    "EncryptedVector",
    "encrypt_vector",
    "encrypt_quantized",
    "decrypt_vector",
    "decrypt_quantized",
    "sum",
]

_MAGIC = b"SGPV"
_VERSION = 1
# magic, version, key fingerprint, ciphertext bytes, clip, num_clients, bits, rounding,
# slot_bits, slots, count, dim
_HEADER = struct.Struct(">4sB16sHdIBBBHIQ")
_ROUNDING = ("stochastic", "nearest")


def _encoding_key(q: Quantizer) -> tuple[float, int, int]:
    return (q.bound, q.num_clients, q.bits)


class EncryptedVector:
    """A packed, encrypted vector of ``dim`` values and the number of summands in it.

    Build one with :func:`encrypt_vector` (or :meth:`from_bytes`); do not call the
    constructor directly. Supported operations (all return new objects):

    * ``a + b``: slot-wise sum of two vectors under the same key and encoding
      (``count = a.count + b.count``), else :class:`IncompatibleError`;
    * ``a + x`` / ``x + a`` with a plaintext float array ``x`` of shape ``(dim,)``: ``x``
      is quantized with the vector's quantizer and counts as ONE summand;
    * ``a * k`` / ``k * a`` for an integer ``k >= 0``: ``count = k * a.count``;
    * ``0 + a`` returns ``a`` so Python's built-in ``sum`` works.

    Any operation whose result would hold more than ``quantizer.num_clients`` summands
    raises :class:`SumOverflowError` before computing anything.

    Attributes: ``public_key``, ``quantizer``, ``layout`` (:class:`PackingLayout`),
    ``ciphertexts`` (list of ``gmpy2.mpz`` in ``[1, n^2)``), ``count``, ``dim``.
    """

    __array_ufunc__ = None  # make ndarray + EncryptedVector call __radd__

    def __init__(
        self,
        public_key: PaillierPublicKey,
        quantizer: Quantizer,
        layout: PackingLayout,
        ciphertexts: list,
        count: int,
    ) -> None:
        self.public_key = public_key
        self.quantizer = quantizer
        self.layout = layout
        self.ciphertexts = ciphertexts
        self.count = int(count)
        self._n = gmpy2.mpz(public_key.n)
        self._nsquare = self._n * self._n

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """Number of values ``d``."""
        return self.layout.dim

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed width of one serialized ciphertext: byte length of ``n^2``."""
        return (int(self._nsquare).bit_length() + 7) // 8

    @property
    def max_count(self) -> int:
        """Summands a slot can hold (``quantizer.num_clients``)."""
        return self.quantizer.num_clients

    def __len__(self) -> int:
        return self.dim

    def __repr__(self) -> str:
        return (
            f"EncryptedVector(dim={self.dim}, count={self.count}/{self.max_count}, "
            f"ciphertexts={len(self.ciphertexts)}, slots={self.layout.slots}x{self.layout.slot_bits} bits, "
            f"key={key_fingerprint(self.public_key).hex()[:16]})"
        )

    def _check_count(self, new_count: int, what: str) -> None:
        if new_count > self.max_count:
            raise SumOverflowError(
                f"{what} would hold {new_count} summands but the {self.layout.slot_bits}-bit slots of this "
                f"encoding hold at most {self.max_count} (quantizer num_clients); build the quantizer "
                f"with num_clients >= {new_count}"
            )

    def _check_compatible(self, other: "EncryptedVector") -> None:
        same_key(self.public_key, other.public_key)
        if _encoding_key(self.quantizer) != _encoding_key(other.quantizer):
            raise IncompatibleError(
                "cannot combine vectors with different encodings: (clip, num_clients, bits) "
                f"{_encoding_key(self.quantizer)} vs {_encoding_key(other.quantizer)}"
            )
        if self.layout != other.layout:
            raise IncompatibleError(f"cannot combine vectors of dim {self.dim} and {other.dim}")

    def _new(self, ciphertexts: list, count: int) -> "EncryptedVector":
        return EncryptedVector(self.public_key, self.quantizer, self.layout, ciphertexts, count)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        if isinstance(other, EncryptedVector):
            self._check_compatible(other)
            self._check_count(self.count + other.count, "the sum")
            nsq = self._nsquare
            return self._new([a * b % nsq for a, b in zip(self.ciphertexts, other.ciphertexts)], self.count + other.count)
        if isinstance(other, (np.ndarray, list, tuple)):
            return self.add_plain(other)
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool) and other == 0:
            return self
        return self.__add__(other)

    def add_plain(self, x, rng: np.random.Generator | None = None) -> "EncryptedVector":
        """Add a plaintext float vector ``x`` (shape ``(dim,)``); counts as one summand.

        ``x`` is quantized with this vector's quantizer (``rng`` drives the stochastic
        rounding); values beyond its ``bound`` raise ``OutOfRangeError`` unless the
        quantizer was built with ``out_of_range="clip"``. Costs one multiplication mod ``n^2`` per ciphertext.
        """
        arr = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
        if arr.ndim != 1 or arr.shape[0] != self.dim:
            raise IncompatibleError(f"a plaintext added to a {self.dim}-vector must have shape ({self.dim},), got {arr.shape}")
        self._check_count(self.count + 1, "adding a plaintext")
        ints = self.quantizer.quantize(arr, rng)
        n, nsq = self._n, self._nsquare
        pts = pack(offset_encode(ints, self.quantizer), self.layout)
        return self._new([c * (1 + n * m) % nsq for c, m in zip(self.ciphertexts, pts)], self.count + 1)

    def __mul__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InputError(f"an EncryptedVector can only be multiplied by a non-negative integer, got {k!r}")
        k = int(k)
        if k < 0:
            raise InputError(f"the scalar must be non-negative (offset encoding), got {k}")
        self._check_count(self.count * k, f"multiplying by {k}")
        if k == 1:
            return self._new(list(self.ciphertexts), self.count)
        return self._new(gmpy2.powmod_base_list(self.ciphertexts, k, self._nsquare), self.count * k)

    __rmul__ = __mul__

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """Versioned encoding: a 52-byte header then each ciphertext as a fixed-width big-endian integer.

        Header (big-endian): ``b"SGPV"``, version (1 B), key fingerprint (16 B), ciphertext
        width in bytes (2 B), quantizer clip (float64), num_clients (4 B), bits (1 B),
        rounding (1 B), slot_bits (1 B), slots (2 B), count (4 B), dim (8 B). Total size
        ``52 + ceil(dim / slots) * byte_length(n^2)``.
        """
        q = self.quantizer
        width = self.ciphertext_bytes
        header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            key_fingerprint(self.public_key),
            width,
            q.bound,
            q.num_clients,
            q.bits,
            _ROUNDING.index(q.rounding),
            self.layout.slot_bits,
            self.layout.slots,
            self.count,
            self.dim,
        )
        return header + b"".join(c.to_bytes(width, "big") for c in self.ciphertexts)

    @classmethod
    def from_bytes(cls, data: bytes, public_key: PaillierPublicKey) -> "EncryptedVector":
        """Decode :meth:`to_bytes` output; every field is validated before use.

        Raises
        ------
        DecodeError
            wrong magic/version, truncated or over-long data, impossible quantizer or
            layout fields, ``count`` above the encoding's capacity, or a ciphertext
            outside ``[1, n^2)``. (A value sharing a factor with ``n`` is not checked: only
            someone who can factor ``n`` could produce one.)
        IncompatibleError
            the bytes were produced under another public key.
        """
        check_public_key(public_key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"encrypted vector bytes must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise DecodeError(f"encrypted vector is truncated: {len(data)} bytes, the header alone is {_HEADER.size}")
        (magic, version, fp, width, clip, num_clients, bits, rounding, slot_bits, slots, count, dim) = (
            _HEADER.unpack_from(data)
        )
        if magic != _MAGIC:
            raise DecodeError("these bytes are not a secagg encrypted vector (bad magic)")
        if version != _VERSION:
            raise DecodeError(f"unsupported encrypted vector version {version}; this library reads version {_VERSION}")
        if fp != key_fingerprint(public_key):
            raise IncompatibleError(
                f"the vector was encrypted under key {fp.hex()}, not the given key {key_fingerprint(public_key).hex()}"
            )
        n = gmpy2.mpz(public_key.n)
        nsq = n * n
        if width != (int(nsq).bit_length() + 7) // 8:
            raise DecodeError(f"ciphertext width {width} does not match the key's n^2 width")
        if rounding >= len(_ROUNDING) or not math.isfinite(clip):
            raise DecodeError("invalid quantizer fields in the header")
        try:
            quantizer = Quantizer(bound=clip, num_clients=num_clients, bits=bits, rounding=_ROUNDING[rounding])
            layout = layout_for(quantizer, int(n).bit_length(), dim)
        except (ConfigurationError, InputError) as exc:
            raise DecodeError(f"invalid encoding fields in the header: {exc}") from None
        if (layout.slot_bits, layout.slots) != (slot_bits, slots):
            raise DecodeError(
                f"header slot layout {slots}x{slot_bits} bits does not match the layout "
                f"{layout.slots}x{layout.slot_bits} implied by the key and quantizer"
            )
        if count > quantizer.num_clients:
            raise DecodeError(f"count {count} exceeds the encoding's capacity of {quantizer.num_clients} summands")
        expected = _HEADER.size + layout.num_ciphertexts * width
        if len(data) != expected:
            raise DecodeError(f"encrypted vector of dim {dim} must be {expected} bytes, got {len(data)}")
        from_bytes = gmpy2.mpz.from_bytes
        cts = [from_bytes(data[o : o + width], "big") for o in range(_HEADER.size, expected, width)]
        for c in cts:
            if not 0 < c < nsq:
                raise DecodeError("a ciphertext is outside [1, n^2) (corrupted bytes)")
        return cls(public_key, quantizer, layout, cts, count)


# ---------------------------------------------------------------------- encryption
def encrypt_quantized(
    public_key: PaillierPublicKey,
    ints: np.ndarray,
    quantizer: Quantizer,
    *,
    obfuscation: str = "full",
    encryptor: Encryptor | None = None,
) -> EncryptedVector:
    """Encrypt already-quantized signed integers ``ints`` (shape ``(d,)``, in ``[-q_max, q_max]``).

    Use this when the integers come from elsewhere (e.g. discrete DP noise added in the
    integer domain). Returns a vector with ``count = 1``. See :func:`encrypt_vector`.
    """
    check_public_key(public_key)
    arr = np.asarray(ints)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D vector, got shape {arr.shape}")
    if encryptor is None:
        encryptor = get_encryptor(public_key, obfuscation)
    else:
        same_key(encryptor.public_key, public_key)
    layout = layout_for(quantizer, int(public_key.n).bit_length(), arr.size)
    plaintexts = pack(offset_encode(arr, quantizer), layout)
    return EncryptedVector(public_key, quantizer, layout, encryptor.encrypt_plaintexts(plaintexts), 1)


def encrypt_vector(
    public_key: PaillierPublicKey,
    x,
    quantizer: Quantizer,
    *,
    rng: np.random.Generator | None = None,
    obfuscation: str = "full",
    encryptor: Encryptor | None = None,
) -> EncryptedVector:
    """Quantize, pack and encrypt a float vector.

    Parameters
    ----------
    public_key:
        ``phe.PaillierPublicKey``.
    x:
        float array of shape ``(d,)``, ``d >= 1``, within ``[-bound, bound]`` of the
        quantizer: a value beyond raises :class:`~secagg.errors.OutOfRangeError` before
        anything is encrypted, unless the quantizer has ``out_of_range="clip"`` (then it
        is clipped; ``quantizer.count_out_of_range(x)`` counts them).
    quantizer:
        :class:`~secagg.quantize.Quantizer`; its ``bits`` and ``num_clients`` set the slot
        width (``bit_length(num_clients * 2 * q_max)``, at most ``bits``) and the number
        of vectors that may be summed.
    rng:
        numpy Generator for the stochastic rounding (statistical randomness only;
        encryption randomness always comes from the OS CSPRNG).
    obfuscation:
        ``"full"`` (default, textbook Paillier under DCR) or ``"fast"`` (DJN-style short
        exponent with a fixed-base table, several times faster; see
        :mod:`secagg.paillier.obfuscation` for the extra assumption).
    encryptor:
        an :class:`Encryptor` to use (e.g. one with precomputed obfuscators); overrides
        ``obfuscation``. By default a per-process cached encryptor for the key is used.

    Returns
    -------
    EncryptedVector
        ``count = 1``, ``ceil(d / slots)`` ciphertexts.

    Raises
    ------
    InputError
        a non-1-D, empty or non-finite input, or a wrong key or quantizer type.
    ConfigurationError
        an unknown ``obfuscation``.
    """
    arr = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D vector, got shape {np.shape(arr)}")
    if not isinstance(quantizer, Quantizer):
        raise InputError(f"quantizer must be a secagg.quantize.Quantizer, got {type(quantizer).__name__}")
    return encrypt_quantized(
        public_key, quantizer.quantize(arr, rng), quantizer, obfuscation=obfuscation, encryptor=encryptor
    )


def sum(vectors: Iterable[EncryptedVector]) -> EncryptedVector:  # noqa: A001 - deliberate name
    """Homomorphic sum of encrypted vectors (same key and encoding); ``count`` adds up.

    Checks every vector's compatibility and the total count before multiplying.
    Raises :class:`InputError` for an empty input, :class:`IncompatibleError` for mixed
    keys/encodings/dims and :class:`SumOverflowError` if the total count exceeds the
    encoding's capacity.
    """
    vecs = list(vectors)
    if not vecs:
        raise InputError("cannot sum zero encrypted vectors (the result would have no key or encoding)")
    first = vecs[0]
    total_count = 0
    for v in vecs:
        if not isinstance(v, EncryptedVector):
            raise InputError(f"secagg.paillier.sum takes EncryptedVector objects, got {type(v).__name__}")
        first._check_compatible(v)
        total_count += v.count
    first._check_count(total_count, "the sum")
    nsq = first._nsquare
    acc = list(first.ciphertexts)
    for v in vecs[1:]:
        acc = [a * b % nsq for a, b in zip(acc, v.ciphertexts)]
    return first._new(acc, total_count)


# ---------------------------------------------------------------------- decryption
class _CRT:
    """Precomputed CRT constants of one private key (Paillier 1999, Sec. 7)."""

    def __init__(self, private_key: PaillierPrivateKey) -> None:
        p, q = gmpy2.mpz(private_key.p), gmpy2.mpz(private_key.q)
        n = p * q
        if n != private_key.public_key.n:
            raise InputError("the private key's p*q does not equal its public modulus")
        self.p, self.q = p, q
        self.psq, self.qsq = p * p, q * q
        g = n + 1
        self.hp = gmpy2.invert((gmpy2.powmod(g, p - 1, self.psq) - 1) // p, p)
        self.hq = gmpy2.invert((gmpy2.powmod(g, q - 1, self.qsq) - 1) // q, q)
        self.p_inv_q = gmpy2.invert(p, q)

    def _half(self, cts: Sequence, prime, prime_sq, h) -> list:
        xs = gmpy2.powmod_base_list([c % prime_sq for c in cts], prime - 1, prime_sq)
        return [(x - 1) // prime * h % prime for x in xs]

    def decrypt(self, cts: Sequence, workers: int = 1) -> list:
        if workers > 1 and len(cts) > 1:
            with ThreadPoolExecutor(2) as pool:  # gmpy2 releases the GIL in powmod_base_list
                fp = pool.submit(self._half, cts, self.p, self.psq, self.hp)
                fq = pool.submit(self._half, cts, self.q, self.qsq, self.hq)
                mps, mqs = fp.result(), fq.result()
        else:
            mps = self._half(cts, self.p, self.psq, self.hp)
            mqs = self._half(cts, self.q, self.qsq, self.hq)
        p, q, pinv = self.p, self.q, self.p_inv_q
        return [mp + (mq - mp) * pinv % q * p for mp, mq in zip(mps, mqs)]


_CRT_CACHE: OrderedDict[int, _CRT] = OrderedDict()
_CRT_LOCK = threading.Lock()


def _crt_for(private_key: PaillierPrivateKey) -> _CRT:
    key = int(private_key.public_key.n)
    with _CRT_LOCK:
        crt = _CRT_CACHE.get(key)
        if crt is not None and crt.p == private_key.p:
            _CRT_CACHE.move_to_end(key)
            return crt
    crt = _CRT(private_key)
    with _CRT_LOCK:
        _CRT_CACHE[key] = crt
        while len(_CRT_CACHE) > 4:
            _CRT_CACHE.popitem(last=False)
    return crt


def decrypt_quantized(private_key: PaillierPrivateKey, ev: EncryptedVector, *, workers: int = 1) -> np.ndarray:
    """Decrypt to the exact signed integer sum of the ``ev.count`` quantized summands (int64, ``(d,)``).

    ``workers=2`` runs the mod-p and mod-q halves in two threads.

    Raises :class:`IncompatibleError` if ``private_key`` does not belong to ``ev``'s key,
    :class:`IntegrityError` if a decrypted slot is impossible for ``ev.count`` summands
    (corrupted ciphertext or a wrong ``count``).
    """
    check_private_key(private_key)
    if not isinstance(ev, EncryptedVector):
        raise InputError(f"expected an EncryptedVector, got {type(ev).__name__}")
    same_key(private_key.public_key, ev.public_key)
    plaintexts = _crt_for(private_key).decrypt(ev.ciphertexts, workers=workers)
    return _decode_plaintexts(ev, plaintexts)


def _decode_plaintexts(ev: EncryptedVector, plaintexts: Sequence) -> np.ndarray:
    """Packed plaintexts of ``ev`` -> signed integer sums (int64); checks slot ranges."""
    slots = unpack(plaintexts, ev.layout)
    shift = np.uint64(ev.count * ev.quantizer.q_max)
    if slots.size and int(slots.max()) > 2 * int(shift):
        raise IntegrityError(
            f"a decrypted slot exceeds what {ev.count} summands can produce: the ciphertext was "
            "corrupted or its count is wrong"
        )
    return (slots - shift).view(np.int64)


def decrypt_vector(private_key: PaillierPrivateKey, ev: EncryptedVector, *, workers: int = 1) -> np.ndarray:
    """Decrypt and decode: the float64 sum (shape ``(d,)``) of the ``ev.count`` encrypted summands.

    Each coordinate is within ``ev.count * quantizer.resolution`` of the float sum of the
    inputs (clipped to the bound only if the quantizer clips; stochastic rounding makes it
    unbiased). Raises as
    :func:`decrypt_quantized`.
    """
    ints = decrypt_quantized(private_key, ev, workers=workers)
    return ev.quantizer.dequantize(ints, ev.count)
