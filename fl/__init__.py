"""fl: a thin federated-learning layer on top of secagg's public API.

FedAvg (McMahan et al. 2017) with NumPy logistic-regression clients, any secagg
aggregator chosen by name (plain, secagg, secagg+, paillier, central-dp, local-dp,
distributed-dp, or one you register), heterogeneous simulated devices, and the
distributed data-parallel baseline the comparison needs. Only ``secagg.make_aggregator``,
``secagg.aggregators``, ``secagg.dp`` and ``secagg.errors`` are used.

>>> from fl import load_dataset, FedAvgConfig, run_fedavg
>>> ds = load_dataset("breast_cancer", seed=0)
>>> res = run_fedavg(ds, FedAvgConfig(rounds=5, aggregator="secagg"), num_clients=5, seed=0)
>>> 0.85 < res.accuracy <= 1.0
True
"""

from .client import Client, LocalUpdate, clip_and_weight
from .data import DATASETS, PARTITIONS, Dataset, PartitionSummary, load_dataset, partition, partition_summary
from .devices import DeviceFleet, device_times, fedavg_round_time, sync_step_time
from .distributed import DistributedConfig, DistributedResult, run_distributed
from .model import LogisticRegression
from .server import FedAvg, FedAvgConfig, FedAvgResult, RoundRecord, make_clients, run_fedavg

__all__ = [
    "DATASETS",
    "PARTITIONS",
    "Client",
    "Dataset",
    "DeviceFleet",
    "DistributedConfig",
    "DistributedResult",
    "FedAvg",
    "FedAvgConfig",
    "FedAvgResult",
    "LocalUpdate",
    "LogisticRegression",
    "PartitionSummary",
    "RoundRecord",
    "clip_and_weight",
    "device_times",
    "fedavg_round_time",
    "load_dataset",
    "make_clients",
    "partition",
    "partition_summary",
    "run_distributed",
    "run_fedavg",
    "sync_step_time",
]
