"""Heterogeneous devices: compute speed, bandwidth, latency, and simulated wall-clock time.

Each simulated client gets a compute speed (floating-point operations per second) and
uplink/downlink bandwidths (bytes per second) drawn from log-normal distributions, the
usual model for device heterogeneity in federated-learning simulators (e.g. FedScale,
Lai et al., ICML 2022, fits device compute and network traces with heavy-tailed
distributions). The defaults span phones to servers:

=================  ==========================  =======================================
quantity           median                      log-normal sigma (x/÷ e^sigma is +-1 sd)
=================  ==========================  =======================================
compute            2 GFLOP/s (mid-range phone)  1.0  (5 % of devices < 0.4, 5 % > 10)
uplink             2 Mbit/s  = 250 kB/s         1.0  (3G ... fibre)
downlink           4 x uplink                  same draw as uplink (asymmetric links)
latency            50 ms per round trip        0.5
=================  ==========================  =======================================

A device's time for a piece of work is then::

    time = round_trips * latency + bytes_down / downlink + flops / compute
           + crypto_seconds * REFERENCE_FLOPS / compute + bytes_up / uplink

where ``crypto_seconds`` is the cryptography time *measured on this machine* and
``REFERENCE_FLOPS`` is this machine's assumed speed (a slower device takes
proportionally longer for the same cryptography). The byte counts come from the real
message encodings (AggregationResult); the flops from the model's counted work. Nothing
here is measured on the device: it is a model, seeded and reproducible.

:func:`fedavg_round_time` (wait once per round, drop clients past a deadline) and
:func:`sync_step_time` (data-parallel: every step waits for the slowest worker) turn
per-device times into the two paradigms' wall-clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from secagg.errors import ConfigurationError, InputError
from secagg.quantize import default_rng

__all__ = ["DeviceFleet", "device_times", "fedavg_round_time", "sync_step_time"]

#: assumed sustained speed of the machine the cryptography was timed on (flop/s)
REFERENCE_FLOPS = 2.0e10


@dataclass(frozen=True)
class DeviceFleet:
    """Per-device speeds, float64 arrays of shape ``(n,)``.

    Attributes
    ----------
    flops: compute speed in floating-point operations per second.
    uplink, downlink: bandwidth in bytes per second.
    latency: seconds per network round trip.
    """

    flops: np.ndarray
    uplink: np.ndarray
    downlink: np.ndarray
    latency: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(a) for a in (self.flops, self.uplink, self.downlink, self.latency)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise InputError(f"device arrays must all have the same 1-D shape, got {shapes}")
        for name in ("flops", "uplink", "downlink"):
            if not np.all(np.asarray(getattr(self, name)) > 0):
                raise InputError(f"device {name} must be positive")

    def __len__(self) -> int:
        return int(np.shape(self.flops)[0])

    @classmethod
    def sample(
        cls,
        n: int,
        rng: np.random.Generator | int | None = None,
        *,
        flops_median: float = 2.0e9,
        flops_sigma: float = 1.0,
        uplink_median: float = 2.5e5,
        uplink_sigma: float = 1.0,
        downlink_ratio: float = 4.0,
        latency_median: float = 0.05,
        latency_sigma: float = 0.5,
    ) -> "DeviceFleet":
        """Draw ``n`` devices from the log-normal model above (``rng`` may be an int seed)."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigurationError(f"n must be a positive integer, got {n!r}")
        if min(flops_median, uplink_median, downlink_ratio, latency_median) <= 0 or min(
                flops_sigma, uplink_sigma, latency_sigma) < 0:
            raise ConfigurationError("device medians must be positive and sigmas non-negative")
        gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        gen = default_rng(gen)
        flops = flops_median * np.exp(flops_sigma * gen.standard_normal(n))
        up = uplink_median * np.exp(uplink_sigma * gen.standard_normal(n))
        lat = latency_median * np.exp(latency_sigma * gen.standard_normal(n))
        return cls(flops=flops, uplink=up, downlink=up * downlink_ratio, latency=lat)

    @classmethod
    def uniform(cls, n: int, *, flops: float = 2.0e9, uplink: float = 2.5e5, downlink: float = 1.0e6,
                latency: float = 0.05) -> "DeviceFleet":
        """``n`` identical devices (a homogeneous cluster when given datacenter numbers)."""
        one = np.ones(int(n))
        return cls(flops=flops * one, uplink=uplink * one, downlink=downlink * one, latency=latency * one)

    def subset(self, idx: np.ndarray) -> "DeviceFleet":
        """The devices at positions ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        return DeviceFleet(self.flops[idx], self.uplink[idx], self.downlink[idx], self.latency[idx])

    def to_dict(self) -> dict:
        """Quantiles of each quantity (JSON-ready)."""
        q = [0.05, 0.5, 0.95]
        return {name: [float(v) for v in np.quantile(getattr(self, name), q)]
                for name in ("flops", "uplink", "downlink", "latency")} | {"quantiles": q, "n": len(self)}


def device_times(fleet: DeviceFleet, *, flops=0.0, bytes_up=0.0, bytes_down=0.0, crypto_seconds=0.0,
                 round_trips: int = 1) -> np.ndarray:
    """Simulated seconds each device of ``fleet`` needs (formula in the module docstring).

    Every argument broadcasts against ``(len(fleet),)``. Returns float64 ``(len(fleet),)``.
    """
    return (round_trips * fleet.latency + np.asarray(bytes_down, dtype=np.float64) / fleet.downlink
            + (np.asarray(flops, dtype=np.float64) + np.asarray(crypto_seconds, dtype=np.float64) * REFERENCE_FLOPS)
            / fleet.flops
            + np.asarray(bytes_up, dtype=np.float64) / fleet.uplink)


def fedavg_round_time(times: np.ndarray, deadline: float | None = None, server_seconds: float = 0.0
                      ) -> tuple[float, np.ndarray]:
    """FedAvg waits once per round: for every client, or until ``deadline`` (seconds).

    Returns ``(round_seconds, late)`` where ``late`` is a bool mask of clients that miss
    the deadline (all False without one). With a deadline the server closes the round at
    ``min(deadline, slowest on-time client)``.
    """
    t = np.asarray(times, dtype=np.float64)
    if deadline is None:
        return (float(t.max()) if t.size else 0.0) + server_seconds, np.zeros(t.shape, dtype=bool)
    if not deadline > 0:
        raise ConfigurationError(f"deadline must be positive seconds, got {deadline!r}")
    late = t > deadline
    on_time = t[~late]
    wait = float(on_time.max()) if on_time.size else float(deadline)
    if late.any():
        wait = float(deadline)
    return wait + server_seconds, late


def sync_step_time(times: np.ndarray) -> float:
    """Synchronous data-parallel SGD: a step ends when the slowest worker is done."""
    t = np.asarray(times, dtype=np.float64)
    return float(t.max()) if t.size else 0.0
