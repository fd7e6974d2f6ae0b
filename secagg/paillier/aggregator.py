"""``PaillierAggregator``: the ``"paillier"`` technique of :func:`secagg.make_aggregator`.

Simulates the three parties of packed Paillier summation in one process and measures
each one's work and bytes:

* each client quantizes, packs and encrypts its update under the key holder's public
  key and sends ``EncryptedVector.to_bytes()`` (``bytes_up``); it first downloads the
  public key (``bytes_down``, fixed-width encoding);
* the server parses the ciphertexts and multiplies them (homomorphic sum,
  :func:`~secagg.paillier.sum_submissions`: each payload is one summand, checked against
  the server's own encoding, whatever its header says); it never holds the private key,
  so it sees no individual update and not the sum either;
* the key holder (a party that does not collude with the server) decrypts the
  aggregate only and returns the float sum.

``server_seconds`` covers the server's parsing and homomorphic additions plus the key
holder's decryption; ``info`` has them separately.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._deprecation import renamed_keyword
from ..aggregators import (
    AggregationResult,
    Aggregator,
    Costs,
    accept_layers_and_weights,
    dropped_rows,
    validate_updates,
)
from ..errors import ConfigurationError, OutOfRangeError, ProtocolAbort
from ..quantize import Quantizer, count_beyond
from ._encrypted_vector import EncryptedVector, decrypt_vector, encrypt_vector, sum_submissions
from ._keys import (
    DEFAULT_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    check_key_bits,
    check_private_key,
    check_public_key,
    generate_keypair,
    public_key_to_bytes,
)
from ._obfuscation import OBFUSCATIONS, Encryptor

__all__ = ["PaillierAggregator"]


class PaillierAggregator(Aggregator):
    """Packed Paillier summation behind the common :class:`~secagg.aggregators.Aggregator` interface.

    Parameters
    ----------
    bound:
        per-coordinate bound of every update: the encoding's range is ``[-bound, bound]``
        (default 1.0; a larger bound costs resolution, ``bound / q_max`` per step).
    out_of_range:
        ``"raise"`` (default): an update with a value beyond ``bound`` raises
        :class:`~secagg.errors.OutOfRangeError` before anything is encrypted;
        ``"clip"``: such values are clipped to ``+-bound`` and counted in
        ``result.clipped`` (per client: ``result.clipped_per_client``).
    bits:
        quantizer ring bits per value (2..64; default 32, the same resolution as the
        ``secagg`` masking aggregators). The slot width is at most ``bits``, so 16 bits
        packs twice as many values per ciphertext as 32.
    key_bits:
        modulus size for the key pair generated on first use (default 3072; 2048 is the
        minimum without ``allow_insecure``). Ignored when ``keypair`` is given.
    keypair:
        ``(phe.PaillierPublicKey, phe.PaillierPrivateKey)`` to use instead of generating one.
    allow_insecure:
        permit ``key_bits < 2048`` (tests only), for a generated key or a given ``keypair``.
    obfuscation:
        ``"full"`` (default, textbook Paillier) or ``"fast"`` (DJN-style short exponents;
        see :mod:`secagg.paillier._obfuscation`).
    num_clients:
        summand capacity of the quantizer; default: the number of rows passed to
        :meth:`aggregate` (the headroom is then exactly what one round needs).
    rounding:
        quantizer rounding, ``"stochastic"`` (unbiased, default) or ``"nearest"``.
    clip:
        deprecated old name of ``bound`` (a :class:`DeprecationWarning`).

    Notes
    -----
    The key pair is generated once per aggregator (lazily) and reused across rounds;
    one per-process :class:`~secagg.paillier.Encryptor` stands in for every simulated
    client.
    """

    name = "paillier"
    randomized = True
    hides_individual_updates = True
    bound: float  # always set (the base class allows None: no bound)

    def __init__(
        self,
        bound: float | None = None,
        bits: int = 32,
        key_bits: int = DEFAULT_KEY_BITS,
        *,
        keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
        allow_insecure: bool = False,
        obfuscation: str = "full",
        num_clients: int | None = None,
        rounding: str = "stochastic",
        out_of_range: str = "raise",
        clip: float | None = None,
    ) -> None:
        bound = renamed_keyword(self, "clip", clip, "bound", bound, default=1.0)
        if obfuscation not in OBFUSCATIONS:
            raise ConfigurationError(f"obfuscation must be one of {OBFUSCATIONS}, got {obfuscation!r}")
        if num_clients is not None and (not isinstance(num_clients, int) or num_clients < 1):
            raise ConfigurationError(f"num_clients must be a positive integer or None, got {num_clients!r}")
        # validates bound, bits, rounding and out_of_range early
        Quantizer(bound, num_clients or 1, bits=bits, rounding=rounding, out_of_range=out_of_range)
        if keypair is not None:
            if not isinstance(keypair, tuple) or len(keypair) != 2:
                raise ConfigurationError("keypair must be a (public_key, private_key) tuple")
            pk, sk = check_public_key(keypair[0], allow_insecure=allow_insecure), check_private_key(keypair[1])
            if int(sk.public_key.n) != int(pk.n):
                raise ConfigurationError("the private key in keypair does not belong to its public key")
            key_bits = int(pk.n).bit_length()
        else:
            check_key_bits(key_bits, allow_insecure)
        self.bound = float(bound)
        self.out_of_range = out_of_range
        self.bits = int(bits)
        self.key_bits = int(key_bits)
        self.allow_insecure = bool(allow_insecure)
        self.obfuscation = obfuscation
        self.num_clients = num_clients
        self.rounding = rounding
        self._keypair = keypair
        self._encryptor: Encryptor | None = None

    @property
    def keypair(self) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
        """The key pair (generated on first access)."""
        if self._keypair is None:
            self._keypair = generate_keypair(self.key_bits, allow_insecure=self.allow_insecure)
        return self._keypair

    def quantizer(self, n: int) -> Quantizer:
        """The quantizer used for a round of ``n`` clients."""
        cap = self.num_clients if self.num_clients is not None else n
        if cap < n:
            raise ConfigurationError(f"this aggregator was built for at most {cap} clients, got {n}")
        return Quantizer(self.bound, cap, bits=self.bits, rounding=self.rounding, out_of_range=self.out_of_range)

    @accept_layers_and_weights
    def aggregate(
        self,
        updates: ArrayLike,
        *,
        dropout: float | Mapping[int, str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> AggregationResult:
        """Encrypt each surviving row, sum the ciphertexts, decrypt the total.

        ``updates``: float array ``(n, d)``. Dropped rows (rate or mapping) send nothing
        and are simply not multiplied in. Values beyond ``bound`` raise
        :class:`~secagg.errors.OutOfRangeError` (before any encryption) under
        ``out_of_range="raise"``, or are clipped and counted in ``result.clipped`` under
        ``"clip"``. Raises :class:`InputError` for bad updates and
        :class:`ProtocolAbort` if every row dropped.
        """
        arr = validate_updates(updates)
        n, d = arr.shape
        quantizer = self.quantizer(n)
        clipped = count_beyond(arr, self.bound)
        if self.out_of_range == "raise" and clipped.any():  # refuse before anything is encrypted
            raise OutOfRangeError(int(clipped.sum()), arr.size, float(np.abs(arr).max()), self.bound)
        gone = dropped_rows(n, dropout, rng)
        keep = np.setdiff1d(np.arange(n, dtype=np.int64), gone)
        if keep.size == 0:
            raise ProtocolAbort("every client dropped: there is nothing to aggregate")
        pk, sk = self.keypair
        if self._encryptor is None:
            self._encryptor = Encryptor(pk, obfuscation=self.obfuscation, allow_insecure=self.allow_insecure)
        pk_bytes = len(public_key_to_bytes(pk))

        client_seconds = np.zeros(n)
        bytes_up = np.zeros(n, dtype=np.int64)
        bytes_down = np.zeros(n, dtype=np.int64)
        payloads: list[bytes] = []
        for i in keep:
            t0 = time.perf_counter()
            payload = encrypt_vector(
                pk, arr[i], quantizer, rng=rng, encryptor=self._encryptor, allow_insecure=self.allow_insecure
            ).to_bytes()
            client_seconds[i] = time.perf_counter() - t0
            bytes_up[i] = len(payload)
            bytes_down[i] = pk_bytes
            payloads.append(payload)

        t0 = time.perf_counter()
        summed = sum_submissions(payloads, pk, quantizer, d, allow_insecure=self.allow_insecure)
        if summed.rejected or summed.total is None:  # cannot happen with the honest clients simulated here
            raise ProtocolAbort(f"the server rejected submissions: {summed.rejected}")
        total_ev = summed.total
        to_key_holder = total_ev.to_bytes()
        add_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        # the key holder learns the summand count from the server (which counted the
        # payloads), not from the bytes
        total = decrypt_vector(
            sk, EncryptedVector.from_bytes(to_key_holder, pk, count=summed.count, allow_insecure=self.allow_insecure)
        )
        decrypt_seconds = time.perf_counter() - t0

        layout = total_ev.layout
        info: dict[str, Any] = {
            "key_bits": int(pk.n).bit_length(),
            "obfuscation": self.obfuscation,
            "slot_bits": layout.slot_bits,
            "slots_per_ciphertext": layout.slots,
            "ciphertexts": layout.num_ciphertexts,
            "quantizer_bits": quantizer.bits,
            "resolution": quantizer.resolution,
            "server_add_seconds": add_seconds,
            "decrypt_seconds": decrypt_seconds,
            "bytes_to_key_holder": len(to_key_holder),
        }
        return AggregationResult(
            total=total,
            survivors=keep,
            costs=Costs.one_round(n, bytes_up=bytes_up, bytes_down=bytes_down, client_seconds=client_seconds,
                                  server_seconds=add_seconds + decrypt_seconds),
            info=info,
            clipped_per_client=clipped,
        )
