"""What a Flower client's training result becomes in the ring, and back: the vector
layout both sides of :mod:`secagg.flower` agree on through the announcement.

Two layouts (``kind``):

``"weighted"`` (the FedAvg weighted mean, as Flower's SecAgg+ computes it)
    ``[w, f, w * x_1, ..., w * x_d]`` where ``x`` is the client's model (its layers
    flattened in order, float64), ``w = num_examples / max_weight`` in ``[0, 1]`` and
    ``f`` is 1 when the client clipped a value to ``bound`` (``out_of_range="clip"``),
    else 0. ``w`` is encoded by a :class:`~secagg.quantize.Quantizer` of bound 1, the
    model by one of bound ``bound`` (per coordinate; values are checked, or clipped,
    *before* weighting), ``f`` as the ring integer itself; every quantizer leaves
    headroom for ``n`` summands, so the ring sum of the survivors decodes to
    ``sum w_i``, the number of survivors that clipped, and ``sum w_i x_i``. The server
    divides: the weighted mean.

``"distributed-dp"`` (DP-FedAvg with distributed discrete Gaussian or Skellam noise)
    the client's model *update* ``x - x_global`` through
    :meth:`secagg.dp.DistributedDP.encode` (L2 clip to ``clip_norm``, rotation,
    conditional rounding, its share of the noise, ``padded_dim`` ring elements); the
    server decodes the noisy sum, divides by the number of survivors (uniform weights:
    a weight would change the sensitivity) and adds the mean update to the global model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..dp.distributed import MECHANISMS, DistributedDP
from ..errors import ConfigurationError, DecodeError, InputError
from ..quantize import Quantizer, apply_bound, check_out_of_range_policy, ring_dtype

__all__ = ["WeightedEncoding", "DPEncoding", "Encoding", "encoding_from_dict", "flatten", "unflatten"]

Shapes = tuple[tuple[int, ...], ...]

#: the weighted layout's leading slots: the weight, the "clipped something" flag
_HEAD = 2


def _shapes(value: Any) -> Shapes:
    try:
        out = tuple(tuple(int(s) for s in shape) for shape in value)
    except (TypeError, ValueError):
        raise DecodeError("the layer shapes must be a list of lists of integers") from None
    if not out or any(s < 0 for shape in out for s in shape):
        raise DecodeError("the layer shapes must be a non-empty list of non-negative sizes")
    return out


def flatten(arrays: Sequence[np.ndarray], shapes: Shapes) -> np.ndarray:
    """Concatenate ``arrays`` (one per layer, shapes ``shapes``) into one float64 ``(d,)`` vector.

    Raises :class:`InputError` when the number of layers or a layer's shape differs, or a
    value is NaN or infinite (the announced model shape is what both sides sum).
    """
    if len(arrays) != len(shapes):
        raise InputError(f"the training result has {len(arrays)} layers, the session sums {len(shapes)}")
    parts = []
    for i, (a, shape) in enumerate(zip(arrays, shapes)):
        arr = np.asarray(a)
        if arr.shape != shape:
            raise InputError(f"layer {i} of the training result has shape {arr.shape}, the session sums {shape}")
        if arr.dtype.kind not in "fiub":
            raise InputError(f"layer {i} of the training result is not numeric ({arr.dtype})")
        parts.append(arr.astype(np.float64, copy=False).ravel())
    x = np.concatenate(parts) if parts else np.zeros(0)
    if not np.all(np.isfinite(x)):
        raise InputError("the training result contains NaN or infinity")
    return x


def unflatten(x: np.ndarray, shapes: Shapes, dtypes: Sequence[np.dtype] | None = None) -> list[np.ndarray]:
    """Split a ``(d,)`` vector back into layers of ``shapes`` (cast to ``dtypes`` if given)."""
    out, pos = [], 0
    for i, shape in enumerate(shapes):
        size = math.prod(shape)
        layer = np.asarray(x[pos:pos + size]).reshape(shape)
        out.append(layer.astype(dtypes[i]) if dtypes is not None else layer.copy())
        pos += size
    return out


@dataclass(frozen=True)
class WeightedEncoding:
    """The ``"weighted"`` layout (see the module docstring).

    Parameters
    ----------
    shapes:
        the model's layer shapes, in order.
    bound:
        per-coordinate bound of the model's values (Flower's ``clipping_range``).
    max_weight:
        ``num_examples`` that maps to weight 1 (a client with more refuses).
    out_of_range:
        ``"raise"`` (a client with a value beyond ``bound`` refuses, before sending its
        input) or ``"clip"`` (clipped, and counted in the flag slot).
    """

    shapes: Shapes
    bound: float
    max_weight: float
    out_of_range: str = "raise"
    kind = "weighted"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", _shapes(self.shapes))
        for name in ("bound", "max_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        check_out_of_range_policy(self.out_of_range)

    @property
    def size(self) -> int:
        """Model parameters ``d`` (all layers)."""
        return sum(math.prod(s) for s in self.shapes)

    def dim(self, n: int, bits: int) -> int:
        """Ring elements per client: ``d + 2``."""
        return self.size + _HEAD

    def _quantizers(self, n: int, bits: int) -> tuple[Quantizer, Quantizer]:
        return (Quantizer(1.0, num_clients=n, bits=bits),
                Quantizer(self.bound, num_clients=n, bits=bits, out_of_range=self.out_of_range))

    def encode(self, arrays: Sequence[np.ndarray], num_examples: float, n: int, bits: int,
               rng: np.random.Generator | None = None, *, reference: Sequence[np.ndarray] | None = None
               ) -> tuple[np.ndarray, int]:
        """Client side: the ring vector (``dim`` elements) and how many values were clipped.

        Raises :class:`InputError` (wrong shapes, NaN, a weight outside ``[0, 1]``) and
        :class:`~secagg.errors.OutOfRangeError` (a value beyond ``bound`` under ``"raise"``).
        """
        x = flatten(arrays, self.shapes)
        try:
            w = float(num_examples) / self.max_weight
        except (TypeError, ValueError):
            raise InputError(f"num_examples must be a number, got {num_examples!r}") from None
        if not 0.0 <= w <= 1.0:
            raise InputError(
                f"num_examples={num_examples} is outside [0, max_weight={self.max_weight:g}] of this session: "
                "its weight would leave the encoder's range (raise SecAggWorkflow(max_weight=))")
        clipped_x, counts = apply_bound(x, self.bound, self.out_of_range)
        qw, qx = self._quantizers(n, bits)
        dt = ring_dtype(bits)
        out = np.empty(self.dim(n, bits), dtype=dt)
        out[0:1] = qw.encode(np.array([w]), rng)
        out[1] = 1 if int(counts) else 0
        out[_HEAD:] = qx.encode(w * clipped_x, rng)
        return out, int(counts)

    def decode(self, ring_sum: np.ndarray, count: int, n: int, bits: int,
               reference: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Server side: the weighted mean ``sum w_i x_i / sum w_i`` (float64 ``(d,)``) and
        ``{"weight_total", "clients_clipped"}``.

        Raises :class:`~secagg.errors.SumOverflowError` when the sum is not one that
        ``count`` encodings can produce, and :class:`InputError` when the survivors'
        total weight is zero (nothing to average).
        """
        qw, qx = self._quantizers(n, bits)
        weight_total = float(qw.decode(ring_sum[0:1], count)[0])
        flagged = int(ring_sum[1])
        if flagged > count:
            raise DecodeError(f"the clipped-clients slot sums to {flagged}, more than the {count} survivors")
        if weight_total <= 0:
            raise InputError("the survivors' total weight is zero (every num_examples was 0): nothing to average")
        total = qx.decode(ring_sum[_HEAD:], count)
        return total / weight_total, {"weight_total": weight_total, "clients_clipped": flagged}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shapes": [list(s) for s in self.shapes], "bound": self.bound,
                "max_weight": self.max_weight, "out_of_range": self.out_of_range}


@dataclass(frozen=True)
class DPEncoding:
    """The ``"distributed-dp"`` layout (see the module docstring); the noise parameters of
    :class:`~secagg.dp.DistributedDP` (``num_clients`` and ``bits`` come from the session)."""

    shapes: Shapes
    clip_norm: float
    noise_multiplier: float
    mechanism: str = "ddg"
    min_clients: int = 1
    k_stddevs: float = 4.0
    rotation_seed: int = 0
    kind = "distributed-dp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", _shapes(self.shapes))
        if self.mechanism not in MECHANISMS:
            raise ConfigurationError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}")

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def params(self, n: int, bits: int) -> DistributedDP:
        """The :class:`~secagg.dp.DistributedDP` both sides build from the announcement."""
        return DistributedDP(clip_norm=self.clip_norm, noise_multiplier=self.noise_multiplier, num_clients=n,
                             dim=self.size, bits=bits, mechanism=self.mechanism, min_clients=self.min_clients,
                             k_stddevs=self.k_stddevs, rotation_seed=self.rotation_seed)

    def dim(self, n: int, bits: int) -> int:
        """Ring elements per client: the rotation's ``padded_dim`` (a power of two >= d)."""
        return self.params(n, bits).padded_dim

    def encode(self, arrays: Sequence[np.ndarray], num_examples: float, n: int, bits: int,
               rng: np.random.Generator | None = None, *, reference: Sequence[np.ndarray] | None = None
               ) -> tuple[np.ndarray, int]:
        """Client side: clip, rotate, round and noise the update ``arrays - reference``."""
        if reference is None:
            raise InputError("distributed DP encodes the model update: the global model is missing from the message")
        delta = flatten(arrays, self.shapes) - flatten(reference, self.shapes)
        return self.params(n, bits).encode(delta, rng), 0

    def decode(self, ring_sum: np.ndarray, count: int, n: int, bits: int,
               reference: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Server side: the new model ``reference + noisy sum / count`` (float64 ``(d,)``)."""
        if reference is None or count < 1:
            raise InputError("decoding a distributed-DP round needs the global model and at least one survivor")
        params = self.params(n, bits)
        total = params.decode(ring_sum, count)
        mean = flatten(reference, self.shapes) + total / count
        return mean, {"noise_std": params.noise_std(count) / count, "dp_params": params}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shapes": [list(s) for s in self.shapes], "clip_norm": self.clip_norm,
                "noise_multiplier": self.noise_multiplier, "mechanism": self.mechanism,
                "min_clients": self.min_clients, "k_stddevs": self.k_stddevs, "rotation_seed": self.rotation_seed}


Encoding = WeightedEncoding | DPEncoding


def encoding_from_dict(d: Any) -> Encoding:
    """Inverse of ``to_dict``; :class:`DecodeError` for anything malformed."""
    if not isinstance(d, dict):
        raise DecodeError("the announcement's encoding must be an object")
    try:
        if d.get("kind") == "weighted":
            return WeightedEncoding(_shapes(d["shapes"]), float(d["bound"]), float(d["max_weight"]),
                                    str(d["out_of_range"]))
        if d.get("kind") == "distributed-dp":
            return DPEncoding(_shapes(d["shapes"]), float(d["clip_norm"]), float(d["noise_multiplier"]),
                              str(d["mechanism"]), int(d["min_clients"]), float(d["k_stddevs"]),
                              int(d["rotation_seed"]))
    except (KeyError, TypeError, ValueError, ConfigurationError) as exc:
        raise DecodeError(f"the announcement's encoding is malformed: {exc}") from None
    raise DecodeError(f"unknown encoding kind {d.get('kind')!r}")
