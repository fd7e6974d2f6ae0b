"""Paillier encryption with fast obfuscators: full r^n, or DJN-style short exponents on a fixed-base table.

With ``g = n + 1`` (Paillier, EUROCRYPT 1999; the choice ``phe`` makes), an encryption
of ``m`` is ``c = (1 + n m) * s mod n^2`` where the *obfuscator* ``s`` is a random n-th
residue. Computing ``s`` is the whole cost of encryption; this module offers two ways:

``"full"`` (default)
    ``s = r^n mod n^2`` with ``r`` uniform in ``Z_n^*`` drawn from :mod:`secrets`. This is
    textbook Paillier: semantically secure under the Decisional Composite Residuosity
    (DCR) assumption. One ``powmod`` with an ``|n|``-bit exponent per ciphertext
    (gmpy2 ``powmod_base_list``, which releases the GIL, so ``workers > 1`` threads help).

``"fast"``
    Damgard-Jurik-Nielsen style (DJN, "A generalization of Paillier's public-key system
    with applications to electronic voting", IJIS 2010, Sec. 4.2): once per key the
    encryptor draws a secret ``r0`` and computes ``h = r0^n mod n^2``; each obfuscator is
    ``s = h^a mod n^2`` with a fresh uniform ``a`` of ``exponent_bits`` bits (default
    256, or twice the key's security level if that is more) from :mod:`os.urandom`. ``h^a`` is evaluated with a fixed-base windowed table
    (8-bit windows: ``exponent_bits / 8`` table look-ups and modular multiplications
    instead of ~``|n|`` squarings), so an obfuscator costs ~30 multiplications mod ``n^2``.
    Security rests on DCR *and* a short-exponent assumption: that ``h^a`` with a 256-bit
    ``a`` is indistinguishable from a random element of ``<h>``. The best known attacks
    on short exponents (Pollard's lambda / baby-step giant-step, van Oorschot-Wiener)
    cost ~``2^(exponent_bits/2)`` = 2^128 operations. DJN's own analysis uses exponents
    of ~``|n|/2`` bits; 256 bits (2 x the 128-bit security level) is the common
    engineering choice. The floor is ``2 x security_bits(|n|)`` (224 bits for a
    2048-bit key, 256 for 3072, 384 for 7680; :func:`min_exponent_bits`): a shorter
    exponent raises :class:`~secagg.errors.InsecureParameterError` unless
    ``allow_insecure=True``. ``h`` never leaves the encryptor (it is not published), so an
    observer sees only ciphertexts. Choose ``"full"`` if you want nothing beyond DCR.

:class:`Encryptor` also keeps a pool of obfuscators computed ahead of time
(:meth:`Encryptor.precompute`, e.g. while the client trains); each obfuscator is used
exactly once (re-use would reveal the difference of two plaintexts).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import gmpy2
import numpy as np

from ..errors import ConfigurationError, InputError, InsecureParameterError
from ._keys import PaillierPublicKey, check_public_key, security_bits

__all__ = ["OBFUSCATIONS", "Encryptor", "get_encryptor", "min_exponent_bits"]

#: accepted values of ``obfuscation=``
OBFUSCATIONS = ("full", "fast")
_WINDOW = 8
#: default length of the short exponents of ``"fast"`` (raised to the floor for big keys)
DEFAULT_EXPONENT_BITS = 256


def min_exponent_bits(public_key: PaillierPublicKey) -> int:
    """Shortest ``"fast"`` exponent accepted without ``allow_insecure``: twice the key's
    security level (at least twice 112 bits), rounded up to a multiple of 8.

    Short-exponent attacks (Pollard's lambda, van Oorschot-Wiener) cost about
    ``2^(exponent_bits / 2)``, so the exponent must be twice as long as the security
    level the modulus gives (:func:`~secagg.paillier._keys.security_bits`).

    Parameters
    ----------
    public_key:
        the ``phe.PaillierPublicKey`` the exponents are used with.

    Returns
    -------
    int
        the floor in bits.
    """
    level = max(112, security_bits(int(public_key.n).bit_length()))
    return -(-2 * level // _WINDOW) * _WINDOW


def _random_unit(n: gmpy2.mpz) -> gmpy2.mpz:
    """Uniform element of Z_n^* from the OS CSPRNG."""
    while True:
        r = gmpy2.mpz(secrets.randbelow(int(n) - 1) + 1)
        if gmpy2.gcd(r, n) == 1:
            return r


class Encryptor:
    """Encrypts packed plaintexts under one public key.

    Parameters
    ----------
    public_key:
        a ``phe.PaillierPublicKey``.
    obfuscation:
        ``"full"`` (standard ``r^n``; default) or ``"fast"`` (short exponent on a
        fixed-base table; see the module docstring for the security argument).
    exponent_bits:
        length of the random exponent for ``"fast"`` (a multiple of 8). Default: 256 or
        :func:`min_exponent_bits` if that is larger.
    workers:
        threads for ``"full"`` obfuscators (gmpy2 releases the GIL in
        ``powmod_base_list``). Default 1.
    allow_insecure:
        accept a modulus below 2048 bits or an exponent below :func:`min_exponent_bits`
        (tests only).

    Raises
    ------
    InsecureParameterError
        a key or exponent below the floor without ``allow_insecure=True``.
    ConfigurationError
        an unknown ``obfuscation``, an exponent that is not a positive multiple of 8, or
        ``workers < 1``.

    Notes
    -----
    The fixed-base table for ``"fast"`` (``exponent_bits/8 * 256`` elements of
    ``Z_{n^2}``: 4 MiB for a 2048-bit key) is built on first use (~55 ms for 2048 bits).
    """

    def __init__(
        self,
        public_key: PaillierPublicKey,
        *,
        obfuscation: str = "full",
        exponent_bits: int | None = None,
        workers: int = 1,
        allow_insecure: bool = False,
    ) -> None:
        self.public_key = check_public_key(public_key, allow_insecure=allow_insecure)
        if obfuscation not in OBFUSCATIONS:
            raise ConfigurationError(f"obfuscation must be one of {OBFUSCATIONS}, got {obfuscation!r}")
        floor = min_exponent_bits(public_key)
        if exponent_bits is None:
            exponent_bits = max(DEFAULT_EXPONENT_BITS, floor)
        if (
            not isinstance(exponent_bits, int) or isinstance(exponent_bits, bool)
            or exponent_bits % _WINDOW or exponent_bits < _WINDOW
        ):
            raise ConfigurationError(f"exponent_bits must be a positive multiple of 8, got {exponent_bits!r}")
        if exponent_bits < floor and not allow_insecure:
            raise InsecureParameterError(
                f"a {exponent_bits}-bit obfuscation exponent is below the floor of {floor} bits for a "
                f"{int(public_key.n).bit_length()}-bit key (twice its security level: short-exponent attacks "
                f"cost about 2^(bits/2)); pass allow_insecure=True only for tests"
            )
        if not isinstance(workers, int) or workers < 1:
            raise ConfigurationError(f"workers must be a positive integer, got {workers!r}")
        self.obfuscation = obfuscation
        self.exponent_bits = exponent_bits
        self.workers = workers
        self.n = gmpy2.mpz(public_key.n)
        self.nsquare = self.n * self.n
        self._table: list[list[gmpy2.mpz]] | None = None
        self._pool: deque[gmpy2.mpz] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ obfuscators
    def _build_table(self) -> list[list[gmpy2.mpz]]:
        nsq = self.nsquare
        base = gmpy2.powmod(_random_unit(self.n), self.n, nsq)  # h = r0^n, kept private
        table = []
        for _ in range(self.exponent_bits // _WINDOW):
            row = [gmpy2.mpz(1), base]
            for _j in range(2, 1 << _WINDOW):
                row.append(row[-1] * base % nsq)
            table.append(row)
            base = row[-1] * base % nsq  # base^(2^8)
        return table

    def _compute(self, count: int) -> list[gmpy2.mpz]:
        if count == 0:
            return []
        nsq = self.nsquare
        if self.obfuscation == "full":
            rs = [_random_unit(self.n) for _ in range(count)]
            if self.workers == 1 or count < 2 * self.workers:
                return gmpy2.powmod_base_list(rs, self.n, nsq)
            chunks = [rs[i :: self.workers] for i in range(self.workers)]
            with ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(lambda c: gmpy2.powmod_base_list(c, self.n, nsq), chunks))
            return [x for part in parts for x in part]  # order is irrelevant: all iid
        if self._table is None:
            self._table = self._build_table()
        table = self._table
        windows = self.exponent_bits // _WINDOW
        digits = np.frombuffer(os.urandom(count * windows), dtype=np.uint8).reshape(count, windows).tolist()
        out = []
        rest = table[1:]
        t0 = table[0]
        for row in digits:
            acc = t0[row[0]]
            for tab, dgt in zip(rest, row[1:]):
                acc = acc * tab[dgt] % nsq
            out.append(acc)
        return out

    def precompute(self, count: int) -> None:
        """Compute ``count`` obfuscators now (offline phase); later encryptions use them first."""
        if not isinstance(count, int) or count < 0:
            raise InputError(f"count must be a non-negative integer, got {count!r}")
        fresh = self._compute(count)
        with self._lock:
            self._pool.extend(fresh)

    @property
    def pooled(self) -> int:
        """Obfuscators waiting in the pool."""
        return len(self._pool)

    def obfuscators(self, count: int) -> list[gmpy2.mpz]:
        """``count`` fresh obfuscators (from the pool first); each is handed out once."""
        taken: list[gmpy2.mpz] = []
        with self._lock:
            while self._pool and len(taken) < count:
                taken.append(self._pool.popleft())
        return taken + self._compute(count - len(taken))

    # ------------------------------------------------------------------ encryption
    def encrypt_plaintexts(self, plaintexts: Sequence[int]) -> list[gmpy2.mpz]:
        """Encrypt integers ``0 <= m < n``: ``(1 + n m) * s mod n^2`` for fresh obfuscators ``s``.

        Raises :class:`InputError` for a plaintext outside ``[0, n)`` (it would decrypt to
        ``m mod n``, a silently different value).
        """
        n, nsq = self.n, self.nsquare
        bad = [i for i, m in enumerate(plaintexts) if not 0 <= m < n]  # one check per ciphertext
        if bad:
            raise InputError(f"plaintexts must lie in [0, n); entries {bad[:5]} do not")
        obf = self.obfuscators(len(plaintexts))
        return [(1 + n * m) * s % nsq for m, s in zip(plaintexts, obf)]


_CACHE: OrderedDict[tuple[int, str], Encryptor] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def get_encryptor(
    public_key: PaillierPublicKey, obfuscation: str = "full", *, allow_insecure: bool = False
) -> Encryptor:
    """A per-process :class:`Encryptor` for ``(public_key, obfuscation)`` (LRU of 4 keys).

    Lets ``encrypt_vector`` amortize the ``"fast"`` table over calls. All callers in this
    process share the cached encryptor's secret ``h``; that is as safe as one client
    encrypting many vectors (each encryption still uses a fresh exponent). The key is
    checked on every call (a cached encryptor never lets a small key through).

    Raises
    ------
    InsecureParameterError
        a modulus below 2048 bits without ``allow_insecure=True``.
    """
    check_public_key(public_key, allow_insecure=allow_insecure)
    key = (int(public_key.n), obfuscation)
    with _CACHE_LOCK:
        enc = _CACHE.get(key)
        if enc is not None:
            _CACHE.move_to_end(key)
            return enc
    enc = Encryptor(public_key, obfuscation=obfuscation, allow_insecure=allow_insecure)
    with _CACHE_LOCK:
        _CACHE[key] = enc
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return enc
