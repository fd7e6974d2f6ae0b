"""Distributed differential privacy over secure aggregation: DDG and Skellam.

Implements the client/server pipeline of

* Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for Federated
  Learning with Secure Aggregation", ICML 2021 (DDG), and
* Agarwal, Kairouz, Liu, "The Skellam Mechanism for Differentially Private Federated
  Learning", NeurIPS 2021 (Skellam),

on top of the pairwise-mask secure sum of :mod:`secagg.masking`. No party ever sees
an un-noised sum, and the server sees only the sum:

client i (vector ``x_i``, float, shape ``(d,)``):

1. clip to L2 norm ``c``;
2. rotate: ``R x_i`` with the randomized Walsh-Hadamard transform (public seed, padded
   to ``m = 2^ceil(log2 d)``), which preserves the norm and flattens the coordinates;
3. scale by ``s = 1/gamma`` (chosen below so that a coordinate of the noisy sum wraps
   around the ring only beyond ``k`` standard deviations: rare, not impossible);
4. *conditional randomized rounding*: round each coordinate up or down at random
   (unbiased) and retry until ``||round(s R x_i)||_2 <= B``, with
   ``B = min(cs + sqrt(m), sqrt((cs)^2 + m/4 + sqrt(2 ln(1/beta)) (cs + sqrt(m)/2)))``
   (KLS 2021, Thm 2; each attempt fails with probability at most ``beta``);
5. add integer noise: discrete Gaussian ``N_Z(0, sigma_l^2)`` (DDG) or Skellam with
   variance ``sigma_l^2``, where ``sigma_l = z c s / sqrt(n_min)`` so that
   ``n_min`` surviving clients together add noise of standard deviation ``z c s``
   (``z`` = noise multiplier, in units of the clip norm);
6. reduce modulo ``2^bits`` and enter the secure sum.

server: receives the ring sum of the survivors, maps it to signed integers, divides by
``s``, applies the inverse rotation and drops the padding: an unbiased estimate of the
sum of the clipped inputs plus noise of standard deviation
``sqrt(n_survivors) sigma_l / s`` per coordinate.

Choosing the scale (at most the value that makes ``sigma_l = 2^20``): with ``k`` standard deviations of headroom (default 4, as in KLS),
the signed sum must stay inside ``(-2^(bits-1), 2^(bits-1))``:
``k sqrt(s^2 c^2 (n^2/m + n z^2/n_min) + n/4) <= 2^(bits-1) - 1``, where ``n^2 c^2/m``
bounds the per-coordinate energy of the rotated sum and ``n/4`` the rounding.

The per-client discrete Gaussian sigma must be at least 1/2 (the range of KLS 2021,
Thm 1); smaller values are refused with :class:`ConfigurationError`.

Dropouts: the noise is fixed before anyone drops, so fewer than ``n_min`` survivors
would mean less noise than planned. Over the masking protocol the clients themselves
refuse to unmask a survivor set smaller than ``n_min`` (``min_survivors`` of
:class:`~secagg.masking.MaskingConfig`), so a server that drops honest clients on purpose
cannot shrink the noise: the round aborts instead. :meth:`DistributedDP.dp_event` builds
the privacy event for the actual number of survivors, :func:`distributed_dp_sum` reports
the epsilon achieved, and with ``target_epsilon`` it refuses to run a round whose
worst case (``n_min`` survivors) would exceed the target.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._costs import Costs, CostTotals
from .._deprecation import accept_old_clip
from .._dropout import DropoutSchedule
from ..errors import BudgetExceeded, ConfigurationError, InputError, ProtocolAbort
from ..quantize import default_rng, reduce_to_ring, ring_dtype
from ._accountant import DistributedDiscreteGaussianEvent, DpEvent, SkellamEvent, make_accountant
from ._rotation import RandomizedHadamard, next_power_of_two
from ._samplers import discrete_gaussian, skellam

__all__ = [
    "DistributedDP",
    "DistributedDPResult",
    "RingSum",
    "distributed_dp_sum",
    "masking_secure_sum",
    "plain_ring_sum",
]

MECHANISMS = ("ddg", "skellam")
_MAX_LOCAL_STDDEV = 2.0**20


@accept_old_clip
@dataclass(frozen=True, init=False)
class DistributedDP:
    """Parameters and client/server transforms of one distributed-DP aggregation.

    Parameters
    ----------
    clip_norm:
        L2 norm bound ``c`` of each client's vector (float units). ``clip=`` is its
        deprecated old name (a :class:`DeprecationWarning`).
    noise_multiplier:
        ``z``: the total noise std, with ``n_min`` survivors, is ``z * c`` (float units).
    num_clients:
        ``n``: the most vectors that will be summed (sets the headroom).
    dim:
        ``d``: vector length.
    bits:
        ring size (default 32: uint32 vectors; 33..64 use uint64).
    mechanism:
        ``"ddg"`` (distributed discrete Gaussian) or ``"skellam"``.
    min_clients:
        ``n_min``: fewest survivors the noise is calibrated for (default ``n``).
    beta:
        conditional-rounding failure probability per attempt (default ``exp(-1/2)``).
    k_stddevs:
        headroom against modular wrap, in standard deviations (default 4).
    rotation_seed:
        public seed of the random signs (int).

    Raises
    ------
    ConfigurationError
        for a ring too small to hold the noisy sum, or inconsistent parameters.
    """

    clip_norm: float
    noise_multiplier: float
    num_clients: int
    dim: int
    bits: int
    mechanism: str
    #: resolved: the constructor's ``None`` means ``num_clients``
    min_clients: int
    beta: float
    k_stddevs: float
    rotation_seed: int
    max_rounding_tries: int
    padded_dim: int = field(init=False)
    scale: float = field(init=False)
    local_stddev: float = field(init=False)
    l2_bound: float = field(init=False)

    def __init__(
        self,
        clip_norm: float,
        noise_multiplier: float,
        num_clients: int,
        dim: int,
        bits: int = 32,
        mechanism: str = "ddg",
        min_clients: int | None = None,
        beta: float = math.exp(-0.5),
        k_stddevs: float = 4.0,
        rotation_seed: int = 0,
        max_rounding_tries: int = 1000,
    ) -> None:
        # the constructor takes min_clients=None; the field holds the resolved int
        c, z = float(clip_norm), float(noise_multiplier)
        if not (math.isfinite(c) and c > 0):
            raise ConfigurationError(f"clip_norm (L2 norm) must be a positive finite number, got {clip_norm!r}")
        if not (math.isfinite(z) and z > 0):
            raise ConfigurationError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
        n = int(num_clients)
        if n < 1 or int(dim) < 1:
            raise ConfigurationError(f"num_clients and dim must be >= 1, got {num_clients}, {dim}")
        n_min = n if min_clients is None else int(min_clients)
        if not 1 <= n_min <= n:
            raise ConfigurationError(f"min_clients must be in [1, num_clients={n}], got {min_clients!r}")
        if mechanism not in MECHANISMS:
            raise ConfigurationError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
        if not 0 < beta < 1:
            raise ConfigurationError(f"beta must be in (0, 1), got {beta!r}")
        ring_dtype(bits)
        m = next_power_of_two(int(dim))
        avail = ((1 << (int(bits) - 1)) - 1) / float(k_stddevs)
        spare = avail**2 - n / 4.0
        if spare <= 0:
            raise ConfigurationError(f"a {bits}-bit ring cannot hold the rounding noise of {n} clients; use more bits")
        s = math.sqrt(spare / (c * c * (n * n / m + n * z * z / n_min)))
        # keep every integer far inside float64's exact range, and the local noise std at
        # most 2^20 (numpy's Poisson sampler loses precision for means near 2^52; beyond
        # cs >> sqrt(m) a larger scale buys nothing: the rounding slack is already tiny)
        s = min(s, 2.0**40 / c, _MAX_LOCAL_STDDEV * math.sqrt(n_min) / (z * c))
        cs = c * s
        bound = min(
            cs + math.sqrt(m),
            math.sqrt(cs * cs + m / 4.0 + math.sqrt(2 * math.log(1 / beta)) * (cs + math.sqrt(m) / 2.0)),
        )
        if cs < 1.0:
            raise ConfigurationError(
                f"the {bits}-bit ring leaves a scale of {s:.3g}: clipped vectors would round to zero. "
                "Use more bits, fewer clients or a smaller noise multiplier."
            )
        local = z * cs / math.sqrt(n_min)
        if mechanism == "ddg" and local < 0.5:
            raise ConfigurationError(
                f"each client's discrete Gaussian sigma would be {local:.3g} < 1/2, outside the distributed discrete "
                "Gaussian theorem (Kairouz-Liu-Steinke 2021, Thm 1): use more bits, a larger noise multiplier or "
                "fewer clients (min_clients)"
            )
        for name, value in (("clip_norm", c), ("noise_multiplier", z), ("num_clients", n), ("dim", int(dim)),
                            ("bits", int(bits)), ("mechanism", mechanism), ("min_clients", n_min), ("beta", beta),
                            ("k_stddevs", k_stddevs), ("rotation_seed", rotation_seed),
                            ("max_rounding_tries", max_rounding_tries), ("padded_dim", m), ("scale", s),
                            ("local_stddev", local), ("l2_bound", bound)):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ derived
    @property
    def rotation(self) -> RandomizedHadamard:
        """The shared randomized Hadamard rotation (built on demand, cached)."""
        rot = self.__dict__.get("_rotation")
        if rot is None:
            rot = RandomizedHadamard(self.dim, self.rotation_seed)
            object.__setattr__(self, "_rotation", rot)
        return rot

    @property
    def l1_bound(self) -> float:
        """L1 bound of a rounded client vector: ``B * min(sqrt(m), B)`` (integers: |v| <= v^2)."""
        return self.l2_bound * min(math.sqrt(self.padded_dim), self.l2_bound)

    def noise_std(self, survivors: int) -> float:
        """Std of the noise in each coordinate of the decoded sum (float units)."""
        return math.sqrt(int(survivors)) * self.local_stddev / self.scale

    def dp_event(self, survivors: int) -> DpEvent:
        """Privacy event of one aggregation with ``survivors`` noisy contributions.

        Sensitivity is that of one client's rounded integer vector (add/remove one client).
        """
        k = int(survivors)
        if k < 1:
            raise InputError(f"survivors must be >= 1, got {survivors!r}")
        if self.mechanism == "ddg":
            return DistributedDiscreteGaussianEvent(self.local_stddev, k, self.l2_bound, self.l1_bound, self.padded_dim)
        return SkellamEvent(k * self.local_stddev**2, self.l2_bound, self.l1_bound, dim=self.padded_dim)

    def epsilon(self, survivors: int, delta: float, rounds: int = 1, *, accountant: str = "pld") -> float:
        """Epsilon after ``rounds`` aggregations with ``survivors`` clients each, at ``delta``.

        ``accountant``: ``"pld"`` (default; the exact-PMF / vector bound of
        :mod:`secagg.dp._pld_discrete`) or ``"rdp"`` (Kairouz-Liu-Steinke / Agarwal et al.).
        """
        return make_accountant(accountant).compose(self.dp_event(survivors), int(rounds)).get_epsilon(delta)

    # ------------------------------------------------------------------ client
    def encode(self, x: ArrayLike, rng: np.random.Generator | None = None) -> np.ndarray:
        """Client side: clip, rotate, scale, round conditionally, add noise, wrap.

        ``x``: float array ``(d,)`` or ``(k, d)``. Returns the ring dtype array of shape
        ``(m,)`` / ``(k, m)``. Raises :class:`InputError` for a wrong shape or NaN/inf.
        """
        gen = default_rng(rng)
        ints = self.round_and_noise(x, gen)
        dt = ring_dtype(self.bits)
        out = ints.astype(np.uint64) if dt == np.uint64 else ints.astype(dt)
        return reduce_to_ring(out, self.bits)

    def round_and_noise(self, x: ArrayLike, rng: np.random.Generator | None = None) -> np.ndarray:
        """Steps 1-5 of the client pipeline; returns signed int64 (before the wrap)."""
        gen = default_rng(rng)
        arr = np.asarray(x, dtype=np.float64)
        single = arr.ndim == 1
        rows = arr[None, :] if single else arr
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise InputError(f"client vectors must have shape ({self.dim},) or (k, {self.dim}), got {arr.shape}")
        if not np.all(np.isfinite(rows)):
            raise InputError("client vectors contain NaN or infinity")
        norms = np.linalg.norm(rows, axis=1)
        factor = np.minimum(1.0, self.clip_norm / np.maximum(norms, 1e-300))
        scaled = self.rotation.forward(rows * factor[:, None]) * self.scale
        ints = self._conditional_round(scaled, gen)
        if self.mechanism == "ddg":
            ints += discrete_gaussian(self.local_stddev, ints.shape, gen)
        else:
            ints += skellam(self.local_stddev**2, ints.shape, gen)
        return ints[0] if single else ints

    def _conditional_round(self, scaled: np.ndarray, gen: np.random.Generator) -> np.ndarray:
        floor = np.floor(scaled)
        frac = scaled - floor
        out = np.empty(scaled.shape, dtype=np.int64)
        todo = np.arange(scaled.shape[0])
        bound2 = self.l2_bound**2
        for _ in range(self.max_rounding_tries):
            r = floor[todo] + (gen.random((todo.size, scaled.shape[1])) < frac[todo])
            ok = np.einsum("ij,ij->i", r, r) <= bound2
            out[todo[ok]] = r[ok].astype(np.int64)
            todo = todo[~ok]
            if todo.size == 0:
                return out
        raise ProtocolAbort(f"conditional rounding failed {self.max_rounding_tries} times; beta={self.beta} is too small")

    # ------------------------------------------------------------------ server
    def decode(self, ring_sum: ArrayLike, count: int) -> np.ndarray:
        """Server side: ring sum (shape ``(m,)``) of ``count`` encodings -> float sum ``(d,)``."""
        arr = np.asarray(ring_sum)
        if arr.shape != (self.padded_dim,) or arr.dtype.kind != "u":
            raise InputError(f"ring sum must be an unsigned array of shape ({self.padded_dim},), got {arr.dtype} {arr.shape}")
        if not 0 <= int(count) <= self.num_clients:
            raise InputError(f"count must be in [0, {self.num_clients}], got {count!r}")
        if self.bits == 64:
            signed = arr.astype(np.uint64).view(np.int64)
        else:
            vals = arr.astype(np.int64) & ((1 << self.bits) - 1)
            signed = np.where(vals >= (1 << (self.bits - 1)), vals - (1 << self.bits), vals)
        return self.rotation.inverse(signed.astype(np.float64) / self.scale)


@dataclass
class RingSum:
    """What a secure-sum backend returns to :func:`distributed_dp_sum`: the ring sum of the
    survivors (uint ``(m,)``), their sorted int64 ids, the backend's
    :class:`~secagg._costs.Costs`, and free-form ``info``."""

    ring_sum: np.ndarray
    survivors: np.ndarray
    costs: Costs
    info: dict[str, Any] = field(default_factory=dict)


SecureSum = Callable[..., RingSum]


def plain_ring_sum(
    ring_vectors: np.ndarray,
    *,
    bits: int,
    dropout: float | Mapping[int, str] | None = None,
    rng: np.random.Generator | None = None,
    **_: Any,
) -> RingSum:
    """A *non-secure* modular sum with the secure-sum interface: for unit tests of encode/decode only.

    Dropout: ``None``, a rate (that fraction of rows, chosen with ``rng``, is removed) or
    a mapping ``{row: round}``.
    """
    n = ring_vectors.shape[0]
    gone = DropoutSchedule.resolve(n, dropout, "masked_input", rng).rows
    keep = np.setdiff1d(np.arange(n), gone)
    dt = ring_dtype(bits)
    total = reduce_to_ring(ring_vectors[keep].sum(axis=0, dtype=dt), bits)
    per = np.where(np.isin(np.arange(n), keep), ring_vectors.shape[1] * dt.itemsize, 0).astype(np.int64)
    return RingSum(total, keep.astype(np.int64), Costs.one_round(n, bytes_up=per), {"secure_sum": "plain"})


def masking_secure_sum(
    ring_vectors: np.ndarray,
    *,
    bits: int,
    dropout: float | Mapping[int, str] | None = None,
    rng: np.random.Generator | None = None,
    threshold: int | None = None,
    graph: str = "complete",
    k: int | None = None,
    min_survivors: int | None = None,
    **kwargs: Any,
) -> RingSum:
    """Pairwise-mask secure sum of ring vectors via :func:`secagg.masking.simulate_ring`.

    ``min_survivors``: the clients refuse to unmask fewer survivors (the noise floor).
    """
    from ..masking.simulate import simulate_ring

    options: dict[str, Any] = {"bits": bits, "threshold": threshold, "graph": graph, "dropout": dropout, "rng": rng,
                               "min_survivors": min_survivors}
    if k is not None:
        options["k"] = k
    options.update(kwargs)
    res = simulate_ring(ring_vectors, **options)
    return RingSum(np.asarray(res.ring_sum), np.asarray(res.survivors, dtype=np.int64), res.costs,
                   {"secure_sum": "masking", "graph": graph, "excluded": res.excluded, "misbehaving": res.misbehaving})


@dataclass
class DistributedDPResult(CostTotals):
    """Outcome of :func:`distributed_dp_sum`.

    ``total`` float64 ``(d,)`` noisy sum of the survivors' clipped vectors;
    ``survivors`` int64 row indices; ``noise_std`` per-coordinate noise std of ``total``;
    ``epsilon`` achieved by this one aggregation at ``delta`` given the actual survivors
    (None if no delta was given); ``event`` the privacy event to compose into an
    accountant; ``costs`` the :class:`~secagg._costs.Costs` of the secure sum with a
    leading ``"encode"`` round (each client's clipping, rotation, rounding and noise, and
    the server's decoding), so client seconds include the DP encoding *and* the
    secure-sum client work.
    """

    total: np.ndarray
    survivors: np.ndarray
    noise_std: float
    epsilon: float | None
    delta: float | None
    event: DpEvent
    params: DistributedDP
    costs: Costs
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def encode_seconds(self) -> np.ndarray:
        """float64 ``(n,)``: each client's DP encoding seconds."""
        return self.costs.client_seconds["encode"]


def distributed_dp_sum(
    updates: ArrayLike,
    params: DistributedDP,
    *,
    dropout: float | Mapping[int, str] | None = None,
    rng: np.random.Generator | None = None,
    delta: float | None = 1e-5,
    target_epsilon: float | None = None,
    secure_sum: SecureSum | None = None,
    **secure_sum_options: Any,
) -> DistributedDPResult:
    """Run one distributed-DP aggregation of the rows of ``updates`` (float ``(n, d)``).

    Each client encodes its row (timed per client), the ring vectors go through
    ``secure_sum`` (default :func:`masking_secure_sum`, i.e. SecAgg/SecAgg+; extra
    keyword options such as ``threshold``, ``graph``, ``k`` are passed on), and the
    server decodes the ring sum of the survivors. Over the masking protocol the clients
    refuse to unmask fewer than ``params.min_clients`` survivors.

    ``target_epsilon`` (with ``delta``): refuse the round *before* anything runs if its
    worst case, ``params.min_clients`` survivors, would exceed it.

    Raises
    ------
    InputError
        for a wrong shape or non-finite updates.
    BudgetExceeded
        the round's worst-case epsilon exceeds ``target_epsilon``.
    ProtocolAbort
        when the secure sum aborts (too few survivors, or fewer than ``min_clients``).
    """
    arr = np.asarray(updates, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != params.dim or arr.shape[0] > params.num_clients or arr.shape[0] < 1:
        raise InputError(
            f"updates must have shape (n <= {params.num_clients}, {params.dim}), got {arr.shape}"
        )
    if target_epsilon is not None:
        if delta is None:
            raise ConfigurationError("target_epsilon needs delta")
        worst = params.epsilon(params.min_clients, delta)
        if worst > float(target_epsilon):
            raise BudgetExceeded(
                f"this round's epsilon with the minimum {params.min_clients} survivors is {worst:.4g} at "
                f"delta={delta:g}, above the target {float(target_epsilon):g}; raise the noise multiplier or "
                "the minimum number of survivors"
            )
    gen = default_rng(rng)
    n = arr.shape[0]
    params.rotation  # build the shared rotation once, outside the per-client timings
    dt = ring_dtype(params.bits)
    ring = np.empty((n, params.padded_dim), dtype=dt)
    enc_seconds = np.zeros(n)
    for i in range(n):
        t0 = time.perf_counter()
        ring[i] = params.encode(arr[i], gen)
        enc_seconds[i] = time.perf_counter() - t0
    backend = masking_secure_sum if secure_sum is None else secure_sum
    if secure_sum is None:  # the clients enforce the noise floor themselves
        secure_sum_options.setdefault("min_survivors", min(params.min_clients, n))
    out = backend(ring, bits=params.bits, dropout=dropout, rng=gen, **secure_sum_options)
    survivors = np.sort(np.asarray(out.survivors, dtype=np.int64))
    t0 = time.perf_counter()
    total = params.decode(out.ring_sum, len(survivors))
    decode_seconds = time.perf_counter() - t0
    count = len(survivors)
    event = params.dp_event(max(count, 1))
    eps = params.epsilon(count, delta) if (delta is not None and count >= 1) else None
    costs = out.costs.with_leading_round("encode", client_seconds=enc_seconds, server_seconds=decode_seconds)
    return DistributedDPResult(
        total=total,
        survivors=survivors,
        noise_std=params.noise_std(count),
        epsilon=eps,
        delta=delta,
        event=event,
        params=params,
        costs=costs,
        info=dict(out.info),
    )
