"""Encrypted packed vectors: encrypt, add homomorphically, decrypt with CRT, and versioned bytes.

An :class:`EncryptedVector` is a list of Paillier ciphertexts (Paillier, EUROCRYPT 1999,
``g = n + 1``) each holding ``layout.slots`` quantized values (see
:mod:`secagg.paillier._packing`), plus the summand ``count`` it has absorbed. Multiplying
ciphertexts adds plaintexts slot-wise; ``count`` is checked against the quantizer's
``num_clients`` *before* every operation so a slot can never carry into its neighbour.
Decryption uses the Chinese remainder theorem with ``p`` and ``q`` (two half-size
exponentiations mod ``p^2`` and ``q^2``, as in Paillier's paper, Sec. 7) through gmpy2.

``count`` is never taken from a peer's bytes: :meth:`EncryptedVector.from_bytes` is told
how many summands the reader knows the vector holds (one for a client's submission), and
:func:`sum_submissions` is how a server adds submissions it does not trust.
"""

from __future__ import annotations

import math
import numbers
import struct
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Sequence

import gmpy2
import numpy as np

from ..errors import (
    ConfigurationError,
    DecodeError,
    IncompatibleError,
    InputError,
    IntegrityError,
    SecAggError,
    SumOverflowError,
)
from ..quantize import Quantizer
from ._keys import (
    PaillierPrivateKey,
    PaillierPublicKey,
    check_private_key,
    check_public_key,
    key_fingerprint,
    same_key,
)
from ._obfuscation import Encryptor, get_encryptor
from ._packing import PackingLayout, layout_for, offset_encode, pack, unpack

__all__ = [
    "EncryptedVector",
    "SubmissionSum",
    "encrypt_vector",
    "encrypt_quantized",
    "decrypt_vector",
    "decrypt_quantized",
    "sum",
    "sum_submissions",
]

_MAGIC = b"SGPV"
_VERSION = 1
# magic, version, key fingerprint, ciphertext bytes, bound, num_clients, bits, rounding,
# slot_bits, slots, count, dim
_HEADER = struct.Struct(">4sB16sHdIBBBHIQ")
_ROUNDING = ("stochastic", "nearest")


def _encoding_key(q: Quantizer) -> tuple[float, int, int]:
    return (q.bound, q.num_clients, q.bits)


def _is_int(k) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


class EncryptedVector:
    """A packed, encrypted vector of ``dim`` values and the number of summands in it.

    Build one with :func:`encrypt_vector` (or :meth:`from_bytes`); do not call the
    constructor directly. The operators follow python-paillier's ``EncryptedNumber``
    where Paillier allows it, element-wise over the vector (all return new objects):

    ==========================  ================================================  ==========================
    expression                  result                                            summands (``count``)
    ==========================  ================================================  ==========================
    ``a + b``                   slot-wise sum (same key and encoding)             ``a.count + b.count``
    ``a + x``, ``x + a``        ``x``: float array ``(dim,)``, quantized          ``a.count + 1``
    ``-a``                      the negated sum                                   ``a.count``
    ``a - b``                   ``a + (-b)``                                      ``a.count + b.count``
    ``a - x``, ``x - a``        ``a + (-x)``, ``x + (-a)``                        ``a.count + 1``
    ``a * k``, ``k * a``        integer ``k`` (negative: negated)                 ``abs(k) * a.count``
    ``sum(vectors)``            ``0 + a`` is ``a``, so the builtin works          the total
    ==========================  ================================================  ==========================

    **Encoding rule (signs and counts).** Every slot holds the *offset* encoding of a sum
    of ``c`` quantized values: ``u = sum(v) + c * q_max`` in ``[0, 2 c q_max]``, never
    negative, so packed slots never borrow from each other. Negation maps ``u`` to
    ``2 c q_max - u``, which is the offset encoding of ``-sum(v)`` with the same ``c``
    (computed as ``Enc(2 c q_max in every slot) * Enc(u)^-1``). Subtraction is addition of
    the negation, so ``a - b`` holds ``a.count + b.count`` offset summands and consumes
    that much of the slots' capacity: it overflows exactly when ``a + b`` would.
    Decryption subtracts ``count * q_max`` and returns ``sum(a) - sum(b)``.

    **What Paillier does not allow** raises :class:`~secagg.errors.InputError` naming the
    rule: ``a * b`` (Paillier is only additively homomorphic), ``a * 0.5`` and ``a / k``
    (the scalar is an exponent, so it must be an integer; scale after decryption), and
    adding a bare number (add a vector of shape ``(dim,)``; only ``0 + a`` is ``a``).

    Any operation whose result would hold more than ``quantizer.num_clients`` summands
    raises :class:`SumOverflowError` before computing anything, so no slot ever wraps.

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
                "cannot combine vectors with different encodings: (bound, num_clients, bits) "
                f"{_encoding_key(self.quantizer)} vs {_encoding_key(other.quantizer)}"
            )
        if self.layout != other.layout:
            raise IncompatibleError(f"cannot combine vectors of dim {self.dim} and {other.dim}")

    def _new(self, ciphertexts: list, count: int) -> "EncryptedVector":
        return EncryptedVector(self.public_key, self.quantizer, self.layout, ciphertexts, count)

    def _plain_operand(self, x) -> np.ndarray | None:
        """``x`` as a float vector of shape ``(dim,)`` if it is meant as a plaintext vector,
        ``None`` if it is not a vector at all."""
        if isinstance(x, (np.ndarray, list, tuple)):
            arr = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
            if arr.ndim != 1 or arr.shape[0] != self.dim:
                raise IncompatibleError(
                    f"a plaintext added to a {self.dim}-vector must have shape ({self.dim},), got {arr.shape}"
                )
            return arr
        return None

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        if isinstance(other, EncryptedVector):
            self._check_compatible(other)
            self._check_count(self.count + other.count, "the sum")
            nsq = self._nsquare
            return self._new([a * b % nsq for a, b in zip(self.ciphertexts, other.ciphertexts)], self.count + other.count)
        if _is_int(other) and other == 0:
            return self  # the start value of the builtin sum()
        arr = self._plain_operand(other)
        if arr is not None:
            return self.add_plain(arr)
        if isinstance(other, numbers.Number):
            raise InputError(
                f"cannot add the number {other!r} to an encrypted vector: add a plaintext vector of shape "
                f"({self.dim},) instead (e.g. np.full({self.dim}, {other!r})); it counts as one summand"
            )
        return NotImplemented

    def __radd__(self, other):
        return self.__add__(other)

    def __neg__(self) -> "EncryptedVector":
        nsq = self._nsquare
        shift = np.full(self.dim, 2 * self.count * self.quantizer.q_max, dtype=np.uint64)
        consts = pack(shift, self.layout)  # 2 c q_max in every real slot, 0 in the padding
        out = []
        for c, m in zip(self.ciphertexts, consts):
            try:
                inv = gmpy2.invert(c, nsq)
            except ZeroDivisionError:
                raise IntegrityError("a ciphertext is not invertible mod n^2 (corrupted bytes)") from None
            out.append((1 + self._n * m) * inv % nsq)
        return self._new(out, self.count)

    def __sub__(self, other):
        if isinstance(other, EncryptedVector):
            self._check_compatible(other)
            self._check_count(self.count + other.count, "the difference")
            return self + (-other)
        arr = self._plain_operand(other)
        if arr is not None:
            return self.add_plain(-arr)
        if isinstance(other, numbers.Number):
            raise InputError(
                f"cannot subtract the number {other!r} from an encrypted vector: subtract a plaintext vector "
                f"of shape ({self.dim},) instead; it counts as one summand"
            )
        return NotImplemented

    def __rsub__(self, other):
        arr = self._plain_operand(other)
        if arr is not None:
            self._check_count(self.count + 1, "the difference")
            return (-self).add_plain(arr)
        if _is_int(other) and other == 0:
            return -self
        if isinstance(other, numbers.Number):
            raise InputError(
                f"cannot subtract an encrypted vector from the number {other!r}: use a plaintext vector of "
                f"shape ({self.dim},)"
            )
        return NotImplemented

    def add_plain(self, x, rng: np.random.Generator | None = None) -> "EncryptedVector":
        """Add a plaintext float vector ``x`` (shape ``(dim,)``); counts as one summand.

        ``x`` is quantized with this vector's quantizer (``rng`` drives the stochastic
        rounding). Costs one multiplication mod ``n^2`` per ciphertext.

        Raises
        ------
        IncompatibleError
            ``x`` does not have shape ``(dim,)``.
        OutOfRangeError
            a value of ``x`` lies beyond the quantizer's ``bound`` and the quantizer
            was built with ``out_of_range="raise"`` (the default); with
            ``out_of_range="clip"`` it is clipped to the bound instead.
        SumOverflowError
            the result would hold more than ``num_clients`` summands.
        """
        arr = self._plain_operand(x)
        if arr is None:
            raise InputError(f"add_plain takes a float vector of shape ({self.dim},), got {type(x).__name__}")
        self._check_count(self.count + 1, "adding a plaintext")
        ints = self.quantizer.quantize(arr, rng)
        n, nsq = self._n, self._nsquare
        pts = pack(offset_encode(ints, self.quantizer), self.layout)
        return self._new([c * (1 + n * m) % nsq for c, m in zip(self.ciphertexts, pts)], self.count + 1)

    def __mul__(self, k):
        if isinstance(k, EncryptedVector):
            raise InputError(
                "cannot multiply two encrypted vectors: Paillier is only additively homomorphic "
                "(multiply by a plaintext integer, or decrypt first)"
            )
        if not _is_int(k):
            raise InputError(
                f"an encrypted vector can only be multiplied by a plaintext integer, got {k!r}: the scalar "
                "is an exponent of the ciphertext and this fixed-point encoding has one scale, so scale "
                "the decrypted sum instead (e.g. decrypt_vector(sk, ev) * 0.5)"
            )
        k = int(k)
        self._check_count(self.count * abs(k), f"multiplying by {k}")
        if k < 0:
            return -(self * -k)
        if k == 1:
            return self._new(list(self.ciphertexts), self.count)
        return self._new(gmpy2.powmod_base_list(self.ciphertexts, k, self._nsquare), self.count * k)

    __rmul__ = __mul__

    def __truediv__(self, k):
        raise InputError(
            "an encrypted vector cannot be divided: Paillier scales by integer exponents only; "
            "divide the decrypted sum instead (e.g. decrypt_vector(sk, ev) / k)"
        )

    __floordiv__ = __truediv__

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """Versioned encoding: a 52-byte header then each ciphertext as a fixed-width big-endian integer.

        Header (big-endian): ``b"SGPV"``, version (1 B), key fingerprint (16 B), ciphertext
        width in bytes (2 B), quantizer bound (float64), num_clients (4 B), bits (1 B),
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
    def from_bytes(
        cls,
        data: bytes,
        public_key: PaillierPublicKey,
        *,
        count: int = 1,
        quantizer: Quantizer | None = None,
        dim: int | None = None,
        allow_insecure: bool = False,
    ) -> "EncryptedVector":
        """Decode :meth:`to_bytes` output; every field is validated before use.

        The summand count is the *reader's* knowledge, never the writer's claim: a
        server decoding one client's submission passes ``count=1`` (the default), a key
        holder decoding an aggregate passes the number of submissions the server summed.
        The header's count field must agree, so a client cannot pass itself off as zero
        summands (shifting the decrypted sum by ``+bound`` per coordinate) or as many
        (making everyone's sum overflow).

        Parameters
        ----------
        data:
            the bytes.
        public_key:
            the ``phe.PaillierPublicKey`` the reader uses.
        count:
            summands the reader knows the vector holds (default 1: one submission).
        quantizer, dim:
            if given, the encoding and length the reader expects; a header that
            disagrees raises :class:`IncompatibleError` (a server should pass its own
            so that no submission chooses the encoding for the others).
        allow_insecure:
            accept a public key below 2048 bits (tests only).

        Raises
        ------
        DecodeError
            wrong magic/version, truncated or over-long data, impossible quantizer or
            layout fields, a header ``count`` other than ``count``, or a ciphertext
            outside ``[1, n^2)``. (A value sharing a factor with ``n`` is not checked: only
            someone who can factor ``n`` could produce one.)
        IncompatibleError
            the bytes were produced under another public key, or with another encoding
            or length than ``quantizer`` / ``dim``.
        InsecureParameterError
            a key below 2048 bits without ``allow_insecure=True``.
        """
        check_public_key(public_key, allow_insecure=allow_insecure)
        if not _is_int(count) or count < 0:
            raise InputError(f"count must be a non-negative integer, got {count!r}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"encrypted vector bytes must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise DecodeError(f"encrypted vector is truncated: {len(data)} bytes, the header alone is {_HEADER.size}")
        (magic, version, fp, width, bound, num_clients, bits, rounding, slot_bits, slots, header_count, size) = (
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
        if rounding >= len(_ROUNDING) or not math.isfinite(bound):
            raise DecodeError("invalid quantizer fields in the header")
        try:
            decoded_q = Quantizer(bound=bound, num_clients=num_clients, bits=bits, rounding=_ROUNDING[rounding])
            layout = layout_for(decoded_q, int(n).bit_length(), size)
        except (ConfigurationError, InputError) as exc:
            raise DecodeError(f"invalid encoding fields in the header: {exc}") from None
        if (layout.slot_bits, layout.slots) != (slot_bits, slots):
            raise DecodeError(
                f"header slot layout {slots}x{slot_bits} bits does not match the layout "
                f"{layout.slots}x{layout.slot_bits} implied by the key and quantizer"
            )
        if quantizer is not None and _encoding_key(quantizer) != _encoding_key(decoded_q):
            raise IncompatibleError(
                f"the vector's encoding (bound, num_clients, bits) {_encoding_key(decoded_q)} is not the expected "
                f"{_encoding_key(quantizer)}"
            )
        if dim is not None and size != dim:
            raise IncompatibleError(f"the vector has {size} values, expected {dim}")
        if count > decoded_q.num_clients:
            raise SumOverflowError(f"count {count} exceeds the encoding's capacity of {decoded_q.num_clients} summands")
        if header_count != count:
            raise DecodeError(
                f"the header claims {header_count} summands but the reader knows of {count}: a submission is "
                "exactly the summands its sender was asked for (the count is never taken from the bytes)"
            )
        expected = _HEADER.size + layout.num_ciphertexts * width
        if len(data) != expected:
            raise DecodeError(f"encrypted vector of dim {size} must be {expected} bytes, got {len(data)}")
        from_bytes = gmpy2.mpz.from_bytes
        cts = [from_bytes(data[o : o + width], "big") for o in range(_HEADER.size, expected, width)]
        for c in cts:
            if not 0 < c < nsq:
                raise DecodeError("a ciphertext is outside [1, n^2) (corrupted bytes)")
        return cls(public_key, quantizer if quantizer is not None else decoded_q, layout, cts, count)


# ---------------------------------------------------------------------- encryption
def encrypt_quantized(
    public_key: PaillierPublicKey,
    ints: np.ndarray,
    quantizer: Quantizer,
    *,
    obfuscation: str = "full",
    encryptor: Encryptor | None = None,
    allow_insecure: bool = False,
) -> EncryptedVector:
    """Encrypt already-quantized signed integers ``ints`` (shape ``(d,)``, in ``[-q_max, q_max]``).

    Use this when the integers come from elsewhere (e.g. discrete DP noise added in the
    integer domain). Returns a vector with ``count = 1``. See :func:`encrypt_vector` for
    the parameters and errors.
    """
    check_public_key(public_key, allow_insecure=allow_insecure)
    arr = np.asarray(ints)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D vector, got shape {arr.shape}")
    if encryptor is None:
        encryptor = get_encryptor(public_key, obfuscation, allow_insecure=allow_insecure)
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
    allow_insecure: bool = False,
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
        :mod:`secagg.paillier._obfuscation` for the extra assumption).
    encryptor:
        an :class:`Encryptor` to use (e.g. one with precomputed obfuscators); overrides
        ``obfuscation``. By default a per-process cached encryptor for the key is used.
    allow_insecure:
        accept a public key below 2048 bits (tests only).

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
    InsecureParameterError
        a key below 2048 bits without ``allow_insecure=True``.
    """
    arr = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D vector, got shape {np.shape(arr)}")
    if not isinstance(quantizer, Quantizer):
        raise InputError(f"quantizer must be a secagg.quantize.Quantizer, got {type(quantizer).__name__}")
    check_public_key(public_key, allow_insecure=allow_insecure)
    return encrypt_quantized(
        public_key, quantizer.quantize(arr, rng), quantizer, obfuscation=obfuscation, encryptor=encryptor,
        allow_insecure=allow_insecure,
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


@dataclass
class SubmissionSum:
    """What :func:`sum_submissions` returns.

    Attributes
    ----------
    total:
        the homomorphic sum of the accepted submissions; ``total.count`` is the number of
        accepted submissions, counted by the server (``None`` if none was accepted).
    accepted:
        indices (into the payload list) of the submissions in ``total``.
    rejected:
        ``{index: reason}`` for each submission that was left out.
    """

    total: EncryptedVector | None
    accepted: list[int]
    rejected: dict[int, str]

    @property
    def count(self) -> int:
        """Summands in ``total`` (the number of accepted submissions)."""
        return len(self.accepted)


def sum_submissions(
    payloads: Iterable[bytes],
    public_key: PaillierPublicKey,
    quantizer: Quantizer,
    dim: int,
    *,
    allow_insecure: bool = False,
) -> SubmissionSum:
    """The server's sum of client submissions it does not trust: each payload is ONE summand.

    Each payload is decoded with ``count=1`` and the server's own ``quantizer`` and
    ``dim``; a payload whose bytes say otherwise (another summand count, encoding,
    length or key, or malformed bytes) is rejected on its own with the reason, so one
    bad client neither stops the others nor shifts the sum. The count of the result is
    the number of accepted payloads.

    Parameters
    ----------
    payloads:
        the bytes each client sent (:meth:`EncryptedVector.to_bytes`).
    public_key:
        the key holder's ``phe.PaillierPublicKey``.
    quantizer, dim:
        the encoding and vector length of this aggregation (the server's choice).
    allow_insecure:
        accept a key below 2048 bits (tests only).

    Returns
    -------
    SubmissionSum

    Raises
    ------
    SumOverflowError
        more accepted submissions than ``quantizer.num_clients`` (checked before adding).
    InsecureParameterError
        a key below 2048 bits without ``allow_insecure=True``.
    """
    check_public_key(public_key, allow_insecure=allow_insecure)
    if not isinstance(quantizer, Quantizer):
        raise InputError(f"quantizer must be a secagg.quantize.Quantizer, got {type(quantizer).__name__}")
    accepted: list[int] = []
    rejected: dict[int, str] = {}
    vectors: list[EncryptedVector] = []
    for i, payload in enumerate(payloads):
        try:
            ev = EncryptedVector.from_bytes(
                payload, public_key, count=1, quantizer=quantizer, dim=dim, allow_insecure=allow_insecure
            )
        except SecAggError as exc:
            rejected[i] = str(exc)
            continue
        accepted.append(i)
        vectors.append(ev)
    if not vectors:
        return SubmissionSum(None, accepted, rejected)
    return SubmissionSum(sum(vectors), accepted, rejected)


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
    return decode_plaintexts(ev, plaintexts)


def decode_plaintexts(ev: EncryptedVector, plaintexts: Sequence) -> np.ndarray:
    """Decrypted packed plaintexts of ``ev`` -> the signed integer sums (int64, ``(d,)``).

    Raises :class:`IntegrityError` if a slot is impossible for ``ev.count`` summands
    (shared by the one-key and the two-share decryptions)."""
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
