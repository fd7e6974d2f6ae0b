"""Distributed data-parallel baseline: pooled data, even split, gradient averaging each step.

The "distributed learning" side of the federated-vs-distributed comparison (as in
synchronous data-parallel SGD, Dean et al., "Large Scale Distributed Deep Networks",
NeurIPS 2012, and Goyal et al., "Accurate, Large Minibatch SGD", 2017): the training
data is moved to a cluster (its raw bytes are counted as ``bytes_data_moved``), shuffled
and split evenly over ``num_workers`` workers; at every step each worker computes the
gradient of its share of the global mini-batch, the gradients are summed through the
same ``plain`` aggregator FedAvg uses (so bytes are counted the same way: 4 bytes per
float32 value up, plus the float32 model broadcast down) and the model takes one SGD
step. Every step waits for the slowest worker (:func:`fl.devices.sync_step_time`).

Equal-work comparison with FedAvg: ``epochs = rounds * local_epochs`` processes as many
examples as FedAvg with full participation does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from secagg import make_aggregator
from secagg.errors import ConfigurationError

from .client import FLOPS_PER_EXAMPLE_PARAM
from .data import Dataset
from .devices import DeviceFleet, device_times, sync_step_time
from .model import init_params, loss_and_grad, n_params, predict_proba, residuals, weights_matrix

__all__ = ["DistributedConfig", "DistributedResult", "run_distributed"]

_BYTES_PER_VALUE = 4  # float32 on the wire, as in PlainAggregator


@dataclass(frozen=True)
class DistributedConfig:
    """Synchronous data-parallel SGD settings.

    num_workers: workers sharing each global batch. epochs: passes over the pooled data.
    batch_size: global mini-batch (split evenly over workers). lr, l2: SGD.
    """

    num_workers: int = 10
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.1
    l2: float = 1e-3

    def validate(self, n_rows: int) -> None:
        """Raise ConfigurationError naming the first impossible setting."""
        if self.num_workers < 1 or self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.l2 < 0:
            raise ConfigurationError("num_workers, epochs, batch_size must be >= 1, lr > 0 and l2 >= 0")
        if self.batch_size < self.num_workers:
            raise ConfigurationError(
                f"a global batch of {self.batch_size} cannot give each of {self.num_workers} workers a row; "
                f"use batch_size >= {self.num_workers}")
        if self.batch_size > n_rows:
            raise ConfigurationError(f"batch_size {self.batch_size} is larger than the {n_rows} training rows")


@dataclass
class EpochRecord:
    """Measurements after one epoch of data-parallel training."""

    epoch: int
    steps: int
    test_accuracy: float
    test_loss: float
    bytes_up: int
    bytes_down: int
    train_seconds: float
    simulated_seconds: float


@dataclass
class DistributedResult:
    """A finished data-parallel run."""

    dataset: str
    config: DistributedConfig
    params: np.ndarray
    n_classes: int
    history: list[EpochRecord]
    bytes_data_moved: int
    wall_seconds: float
    devices: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Final test accuracy in [0, 1]."""
        return self.history[-1].test_accuracy

    @property
    def bytes_total(self) -> int:
        """Raw data shipped to the cluster plus all gradient/model traffic."""
        return int(self.bytes_data_moved + sum(r.bytes_up + r.bytes_down for r in self.history))

    @property
    def simulated_seconds(self) -> float:
        """Simulated wall-clock of training on the device fleet (data shipping excluded)."""
        return float(sum(r.simulated_seconds for r in self.history))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the final model, ``(n, n_classes)``."""
        return predict_proba(self.params, X, self.n_classes)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (no raw parameters)."""
        return {"dataset": self.dataset, "config": asdict(self.config), "accuracy": self.accuracy,
                "bytes_total": self.bytes_total, "bytes_data_moved": self.bytes_data_moved,
                "simulated_seconds": self.simulated_seconds, "wall_seconds": self.wall_seconds,
                "devices": self.devices, "epochs": [asdict(r) for r in self.history]}


def run_distributed(dataset: Dataset, config: DistributedConfig = DistributedConfig(), *,
                    devices: DeviceFleet | None = None, seed: int | None = None,
                    progress: bool = False) -> DistributedResult:
    """Train ``dataset`` with synchronous data-parallel SGD over ``config.num_workers`` workers.

    ``devices`` (one per worker; default :meth:`DeviceFleet.sample` with the seed) gives
    the simulated step times. Returns a :class:`DistributedResult` with one record per epoch.
    """
    X, y = dataset.X_train, dataset.y_train
    n, d = X.shape
    config.validate(n)
    k = dataset.n_classes
    P = n_params(d, k)
    ss = np.random.SeedSequence(seed)
    s_shuffle, s_dev = ss.spawn(2)
    gen = np.random.default_rng(s_shuffle)
    W_ = config.num_workers
    fleet = devices if devices is not None else DeviceFleet.sample(W_, np.random.default_rng(s_dev))
    if len(fleet) != W_:
        raise ConfigurationError(f"{W_} workers need {W_} devices, got {len(fleet)}")
    agg = make_aggregator("plain")
    t0 = time.perf_counter()
    params = init_params(d, k)
    W = weights_matrix(params, d, k).copy()
    history: list[EpochRecord] = []
    model_bytes = _BYTES_PER_VALUE * P
    epochs = range(1, config.epochs + 1)
    if progress:
        from tqdm import tqdm
        epochs = tqdm(epochs, desc="distributed", leave=False, unit="epoch")
    for ep in epochs:
        order = gen.permutation(n)
        up = down = 0
        train_s = sim_s = 0.0
        steps = 0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            shards = np.array_split(idx, W_)
            ts = time.perf_counter()
            grads = np.zeros((W_, P))
            sizes = np.array([len(s) for s in shards], dtype=np.float64)
            for w, shard in enumerate(shards):  # per worker (not per element)
                if len(shard) == 0:
                    continue
                R = residuals(W, X[shard], y[shard])
                G = np.empty_like(W)
                G[:-1] = X[shard].T @ R
                G[-1] = R.sum(axis=0)
                grads[w] = G.ravel()  # summed (not averaged) so the all-reduce sum is the batch sum
            train_s += time.perf_counter() - ts
            res = agg.aggregate(grads)
            g = (res.total / sizes.sum()).reshape(W.shape)
            W[:-1] -= config.lr * (g[:-1] + config.l2 * W[:-1])
            W[-1] -= config.lr * g[-1]
            b_up = res.bytes_up
            b_down = res.bytes_down + model_bytes
            up += int(b_up.sum())
            down += int(b_down.sum())
            times = device_times(fleet, flops=FLOPS_PER_EXAMPLE_PARAM * sizes * P, bytes_up=b_up,
                                 bytes_down=b_down, crypto_seconds=res.client_seconds, round_trips=1)
            sim_s += sync_step_time(times) + res.server_seconds
            steps += 1
        params = W.ravel().copy()
        loss, _ = loss_and_grad(params, dataset.X_test, dataset.y_test, k, 0.0)
        acc = float(np.mean(np.argmax(predict_proba(params, dataset.X_test, k), axis=1) == dataset.y_test))
        history.append(EpochRecord(epoch=ep, steps=steps, test_accuracy=acc, test_loss=float(loss), bytes_up=up,
                                   bytes_down=down, train_seconds=train_s, simulated_seconds=sim_s))
    # raw data shipped to the cluster: float32 features + one int64 label per row
    data_moved = int(n * d * _BYTES_PER_VALUE + n * 8)
    return DistributedResult(dataset=dataset.name, config=config, params=W.ravel().copy(), n_classes=k,
                             history=history, bytes_data_moved=data_moved, wall_seconds=time.perf_counter() - t0,
                             devices=fleet.to_dict())
