"""Helpers for the Flower tests (import after ``pytest.importorskip("flwr")``): a tiny
NumPy client and an in-process grid.

:class:`InlineGrid` hands each message straight to the ClientApp with the node's own
``Context`` (what Flower's simulation runtime does, minus Ray and its start-up time), so
the mod/workflow mapping and every tampering test run in milliseconds; one test in
``test_simulation.py`` runs the real Ray-backed runtime.
"""

from __future__ import annotations

import os
import uuid

import numpy as np

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.client import ClientApp, NumPyClient
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

SHAPES = [(3, 4), (4,)]


def update_of(partition: int, round_: int) -> list[np.ndarray]:
    """Node ``partition``'s training result in round ``round_`` (float32, inside [-1, 1])."""
    gen = np.random.default_rng(100 * round_ + partition)
    return [gen.uniform(-1, 1, size=s).astype(np.float32) for s in SHAPES]


def examples_of(partition: int) -> int:
    return 10 + 5 * partition


class TinyClient(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):
        if config.get("drop"):
            raise RuntimeError(f"node {self.partition} fails in fit")
        return update_of(self.partition, int(config.get("round", 1))), examples_of(self.partition), {}

    def evaluate(self, parameters, config):
        return 0.25, 1, {}


def client_fn(context: Context):
    return TinyClient(int(context.node_config["partition-id"])).to_client()


def drop_mod(drops: dict[int, str | tuple[str, int]]):
    """A mod placed before secagg's: node ``partition`` fails when the message opening
    round ``drops[partition]`` arrives (a dropout at that round); ``(round name, Flower
    round)`` limits it to one Flower round."""
    from secagg.flower._wire import K_MSG, RECORD
    from secagg.masking._messages import decode_message
    from secagg.masking.rounds import OPENS

    def mod(msg, ctxt, call_next):
        rec = msg.content.config_records.get(RECORD)
        if rec is not None:
            opened = OPENS[type(decode_message(rec[K_MSG]))].value
            rule = drops.get(int(ctxt.node_config["partition-id"]))
            if rule == opened or rule == (opened, int(msg.metadata.group_id)):
                raise RuntimeError(f"node drops at {opened}")
        return call_next(msg, ctxt)

    return mod


class _Proxy(ClientProxy):
    def __init__(self, node_id: int) -> None:
        super().__init__(str(node_id))
        self.node_id = node_id

    def get_properties(self, *a, **k):  # pragma: no cover - unused
        raise NotImplementedError

    get_parameters = fit = evaluate = reconnect = get_properties


class InlineGrid:
    """``send_and_receive`` that runs the ClientApp in this process, one Context per node.

    ``tamper(node_id, message) -> message`` may rewrite what a node receives;
    ``tamper_reply(node_id, reply) -> reply`` what the server receives.
    """

    def __init__(self, client_app: ClientApp, num_nodes: int, *, tamper=None, tamper_reply=None) -> None:
        self.app = client_app
        # 64-bit node ids, as Flower draws them (some above 2^63)
        self.node_ids = [(2**63 + 7919 * i * (-1) ** i) % 2**64 for i in range(1, num_nodes + 1)]
        self.partition = {nid: i for i, nid in enumerate(self.node_ids)}
        self.contexts = {nid: Context(run_id=1, node_id=nid,
                                      node_config={"partition-id": i, "num-partitions": num_nodes},
                                      state=RecordDict(), run_config={}) for i, nid in enumerate(self.node_ids)}
        self.tamper, self.tamper_reply = tamper, tamper_reply
        self.log: list[tuple[int, Message]] = []

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            nid = msg.metadata.dst_node_id
            if self.tamper is not None:
                msg = self.tamper(nid, msg)
            self.log.append((nid, msg))
            try:
                reply = self.app(msg, self.contexts[nid])
            except Exception as exc:  # noqa: BLE001 - what Flower turns into an error reply
                reply = Message(Error(code=0, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
            if self.tamper_reply is not None:
                reply = self.tamper_reply(nid, reply)
            replies.append(reply)
        return replies


class RoundConfigFedAvg(FedAvg):
    """FedAvg that tells the nodes the round number and which of them should fail in fit."""

    def __init__(self, drop_in_fit: dict[int, set[int]] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.drop_in_fit = drop_in_fit or {}
        self.partition: dict[int, int] = {}

    def configure_fit(self, server_round, parameters, client_manager):
        from flwr.common import FitIns

        pairs = super().configure_fit(server_round, parameters, client_manager)
        drops = self.drop_in_fit.get(server_round, set())
        return [(p, FitIns(ins.parameters, {"round": server_round, "drop": self.partition.get(p.node_id) in drops}))
                for p, ins in pairs]


def run_rounds(workflow, grid: InlineGrid, rounds: int, *, drop_in_fit=None, initial=None):
    """Run ``rounds`` Flower rounds of ``workflow`` over ``grid``; returns the LegacyContext."""
    cm = SimpleClientManager()
    for nid in grid.node_ids:
        cm.register(_Proxy(nid))
    strategy = RoundConfigFedAvg(drop_in_fit, fraction_fit=1.0, fraction_evaluate=0.0,
                                 min_available_clients=len(grid.node_ids), min_fit_clients=len(grid.node_ids))
    strategy.partition = grid.partition
    ctx = LegacyContext(context=Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                        config=ServerConfig(num_rounds=rounds), strategy=strategy, client_manager=cm)
    import flwr.compat.common.recorddict_compat as compat

    init = initial if initial is not None else [np.zeros(s, dtype=np.float32) for s in SHAPES]
    ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters(init), True)
    for r in range(1, rounds + 1):
        ctx.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: r})
        workflow(grid, ctx)
    return ctx
