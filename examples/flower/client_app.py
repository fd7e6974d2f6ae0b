"""The example's ClientApp: Flower's NumPy secure-aggregation client, with secagg's mod
in place of ``secaggplus_mod`` (the only change)."""

from __future__ import annotations

import os

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context

from secagg.flower import keys_in_directory, secagg_mod

from .task import local_data, mse, train


class FlowerClient(NumPyClient):
    """Trains the linear model on this node's data; ``config["drop"]`` makes it fail (a dropout)."""

    def __init__(self, partition_id: int) -> None:
        self.partition_id = partition_id
        self.x, self.y = local_data(partition_id)

    def fit(self, parameters, config):
        if config.get("drop"):
            raise RuntimeError(f"node {self.partition_id} drops out for the demo")
        return train(parameters, self.x, self.y), len(self.y), {}

    def evaluate(self, parameters, config):
        return mse(parameters, self.x, self.y), len(self.y), {}


def client_fn(context: Context):
    return FlowerClient(int(context.node_config["partition-id"])).to_client()


def make_client_app(keys_dir: str | os.PathLike) -> ClientApp:
    """The ClientApp; each simulated node signs with ``keys_dir/node-<partition-id>.key``."""
    return ClientApp(
        client_fn=client_fn,
        mods=[secagg_mod(signing_key=keys_in_directory(keys_dir),
                         trusted_keys=os.path.join(keys_dir, "allow-list.txt"))],
    )
