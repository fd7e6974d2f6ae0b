"""fl: a thin federated-learning layer on top of secagg's public API.

FedAvg (McMahan et al. 2017) with NumPy logistic-regression clients, any secagg
aggregator chosen by name (plain, secagg, secagg+, paillier, central-dp, local-dp,
distributed-dp, or one you register), heterogeneous simulated devices, and the
distributed data-parallel baseline the comparison needs. It builds on secagg's public
API (``secagg.make_aggregator``, ``secagg.aggregators``, ``secagg.dp``, ``secagg.errors``);
the submodules (:mod:`fl.server`, :mod:`fl.example_dp`, :mod:`fl.privacy`,
:mod:`fl.headline`, ...) hold the rest.

>>> from fl import load_dataset, FedAvgConfig, run_fedavg
>>> ds = load_dataset("breast_cancer", seed=0)
>>> res = run_fedavg(ds, FedAvgConfig(rounds=5, aggregator="secagg"), num_clients=5, seed=0)
>>> 0.85 < res.accuracy <= 1.0
True
"""

from .client import Client
from .data import Dataset, load_dataset, partition
from .devices import DeviceFleet
from .distributed import DistributedConfig, DistributedResult, run_distributed
from .model import LogisticRegression
from .server import FedAvg, FedAvgConfig, FedAvgResult, make_clients, run_fedavg

__all__ = [
    # the common case
    "load_dataset",
    "run_fedavg",
    "FedAvgConfig",
    "FedAvgResult",
    # control
    "FedAvg",
    "make_clients",
    "Client",
    "Dataset",
    "partition",
    "DeviceFleet",
    "LogisticRegression",
    # the distributed data-parallel baseline
    "run_distributed",
    "DistributedConfig",
    "DistributedResult",
]
