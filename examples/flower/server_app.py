"""The example's ServerApp: Flower's secure-aggregation server, with secagg's workflow in
place of ``SecAggPlusWorkflow`` (the only change)."""

from __future__ import annotations

import os
from typing import Any

from flwr.common import Context, FitIns, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow

from secagg.flower import SecAggWorkflow

from .task import initial_model


class DropSome(FedAvg):
    """FedAvg that tells the nodes listed for a round to fail in ``fit`` (a demo of dropouts)."""

    def __init__(self, drops: dict[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drops = drops  # {round: how many nodes drop}

    def configure_fit(self, server_round, parameters, client_manager):
        pairs = super().configure_fit(server_round, parameters, client_manager)
        pairs = sorted(pairs, key=lambda p: p[0].node_id)
        drop = self.drops.get(server_round, 0)
        # FedAvg shares one FitIns between all nodes: give the dropping ones their own
        return [(proxy, FitIns(ins.parameters, {**ins.config, "drop": True}) if i < drop else ins)
                for i, (proxy, ins) in enumerate(pairs)]


def make_server_app(keys_dir: str | os.PathLike, *, num_nodes: int, num_rounds: int = 3,
                    drops: dict[int, int] | None = None, workflow: SecAggWorkflow | None = None) -> ServerApp:
    """The ServerApp: FedAvg over all ``num_nodes`` nodes for ``num_rounds`` rounds through
    ``workflow`` (default: secagg's defaults with the allow-list of ``keys_dir``)."""
    fit_workflow = workflow or SecAggWorkflow(trusted_keys=os.path.join(keys_dir, "allow-list.txt"), timeout=60)
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = DropSome(drops or {}, fraction_fit=1.0, fraction_evaluate=1.0, min_available_clients=num_nodes,
                            min_fit_clients=num_nodes, min_evaluate_clients=num_nodes,
                            initial_parameters=ndarrays_to_parameters(initial_model()))
        context = LegacyContext(context=context, config=ServerConfig(num_rounds=num_rounds), strategy=strategy)
        DefaultWorkflow(fit_workflow=fit_workflow)(grid, context)

    return app
