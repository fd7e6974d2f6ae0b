"""The client mod holds every node to its own policy: what a tampering server (or network)
sends is refused before anything about the node's input leaves it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("flwr")

from flower_helpers import InlineGrid, client_fn, run_rounds  # noqa: E402

from flwr.app import ConfigRecord, Message, MessageType, RecordDict  # noqa: E402
from flwr.client import ClientApp  # noqa: E402

from secagg import keys  # noqa: E402
from secagg.errors import (  # noqa: E402
    ConfigurationError,
    DecodeError,
    InsecureParameterError,
    IntegrityError,
    ProtocolViolation,
    UnexpectedMessage,
)
from secagg.flower import SecAggWorkflow, provision_keys, secagg_mod  # noqa: E402
from secagg.flower._state import load_state  # noqa: E402
from secagg.flower._wire import (  # noqa: E402
    K_ANNOUNCEMENT,
    K_DIRECTORY,
    K_MSG,
    RECORD,
    STATE_RECORD,
    pack_directory,
    session_nonce,
    unpack_directory,
)
from secagg.flower.pki import keys_in_directory  # noqa: E402
from secagg.masking._messages import KeysBroadcast, StartSession, decode_message  # noqa: E402

N = 5


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    provision_keys(d, N)
    return d


def _app(keys_dir, **options):
    return ClientApp(client_fn=client_fn, mods=[secagg_mod(signing_key=keys_in_directory(keys_dir),
                                                           trusted_keys=keys_dir / "allow-list.txt", **options)])


def _workflow(keys_dir, **options):
    return SecAggWorkflow(trusted_keys=keys_dir / "allow-list.txt", **options)


def _record(msg) -> dict:
    return dict(msg.content.config_records[RECORD])


def _with_record(message, **fields):
    message.content.config_records[RECORD] = ConfigRecord({**_record(message), **fields})
    return message


def _reannounce(msg, change):
    """What a malicious server does: rewrite the announcement and re-derive its nonce."""
    rec = _record(msg)
    ann = json.loads(rec[K_ANNOUNCEMENT])
    change(ann)
    body = json.dumps(ann, sort_keys=True, separators=(",", ":")).encode()
    start = decode_message(rec[K_MSG])
    return _with_record(msg, **{K_ANNOUNCEMENT: body,
                                K_MSG: StartSession(session_nonce(body), start.recipient).to_bytes()})


def _is_start(msg) -> bool:
    return RECORD in msg.content.config_records and isinstance(decode_message(_record(msg)[K_MSG]), StartSession)


def _run(keys_dir, tamper, rounds=1, app=None, **wf_options):
    grid = InlineGrid(app or _app(keys_dir), N, tamper=tamper)
    wf = _workflow(keys_dir, **wf_options)
    run_rounds(wf, grid, rounds)
    return grid, wf.reports[-1]


@pytest.mark.parametrize("change, rule", [
    (lambda a: a.update(adversary="honest-but-curious"), "consistency check required"),
    (lambda a: a.update(threshold=2), "threat model"),
    (lambda a: a.update(graph="sparse", k=2, threshold=2), "threat model"),
])
def test_a_weaker_announcement_is_refused_by_every_node(task_identity, keys_dir, change, rule):
    grid, report = _run(keys_dir, lambda nid, m: _reannounce(m, change) if _is_start(m) else m)
    assert report.aggregate is None and len(report.failures) == N
    assert all("InsecureParameterError" in why for why in report.failures.values())
    import re

    assert all(re.search(rule, why) for why in report.failures.values())


def test_a_dp_announcement_below_the_noise_floor_is_refused(task_identity, keys_dir):
    def lower_floor(a):
        a["encoding"]["min_clients"] = N  # noise calibrated for 5 shares ...
        a["min_survivors"] = N - 1        # ... while the nodes would unmask 4

    _, report = _run(keys_dir, lambda nid, m: _reannounce(m, lower_floor) if _is_start(m) else m,
                     noise_multiplier=1.0)
    assert report.aggregate is None
    assert all("below the 5 noise shares" in why for why in report.failures.values())


def test_a_tampered_announcement_no_longer_matches_its_nonce(task_identity, keys_dir):
    victim: list[int] = []

    def tamper(nid, m):
        if _is_start(m) and not victim:
            victim.append(nid)
            ann = json.loads(_record(m)[K_ANNOUNCEMENT])
            ann["encoding"]["bound"] = 1000.0  # e.g. a coarser encoding for this node only
            return _with_record(m, **{K_ANNOUNCEMENT: json.dumps(ann, sort_keys=True, separators=(",", ":")).encode()})
        return m

    _, report = _run(keys_dir, tamper)
    assert "IntegrityError" in report.failures[victim[0]] and "nonce" in report.failures[victim[0]]
    assert victim[0] not in report.survivors and report.aggregate is not None  # the others finish


def test_a_node_missing_from_the_node_list_refuses(task_identity, keys_dir):
    victim: list[int] = []

    def tamper(nid, m):
        if _is_start(m) and not victim:
            victim.append(nid)
            return _reannounce(m, lambda a: a.update(node_ids=sorted(set(a["node_ids"]) - {nid} | {1})))
        return m

    _, report = _run(keys_dir, tamper)
    assert "does not list this node" in report.failures[victim[0]]


def test_a_neighbour_key_off_the_allow_list_is_refused(task_identity, keys_dir):
    stranger = keys.SigningKey.generate().public_bytes()
    victim: list[int] = []

    def tamper(nid, m):
        rec = m.content.config_records.get(RECORD)
        if rec is not None and isinstance(decode_message(rec[K_MSG]), KeysBroadcast) and not victim:
            victim.append(nid)
            entries = unpack_directory(rec[K_DIRECTORY])
            other = next(u for u in entries if entries[u] != entries.get(decode_message(rec[K_MSG]).recipient))
            entries[other] = stranger
            return _with_record(m, **{K_DIRECTORY: pack_directory(entries)})
        return m

    _, report = _run(keys_dir, tamper)
    assert "IntegrityError" in report.failures[victim[0]] and "allow-list" in report.failures[victim[0]]


def test_a_message_replayed_from_an_earlier_session_is_refused(task_identity, keys_dir):
    old: dict[int, Message] = {}

    def tamper(nid, m):
        rec = m.content.config_records.get(RECORD)
        if rec is not None and isinstance(decode_message(rec[K_MSG]), KeysBroadcast):
            if nid not in old:
                old[nid] = dict(rec)  # round 1's KeysBroadcast
            elif nid == min(old):
                return _with_record(m, **{K_MSG: old[nid][K_MSG]})  # replayed in round 2
        return m

    _, report = _run(keys_dir, tamper, rounds=2)
    assert "UnexpectedMessage" in report.failures[min(old)] and "another session" in report.failures[min(old)]


def test_a_tampered_saved_state_cannot_run_code(task_identity, keys_dir):
    import os
    import pickle

    grid = InlineGrid(_app(keys_dir), N)
    victim = grid.node_ids[3]

    def tamper(nid, m):
        saved = grid.contexts[nid].state.config_records.get(STATE_RECORD)
        if nid == victim and saved is not None:
            grid.contexts[nid].state.config_records[STATE_RECORD] = ConfigRecord(
                {**saved, "state": pickle.dumps((os.system, ("true",)))})
        return m

    grid.tamper = tamper
    wf = _workflow(keys_dir)
    run_rounds(wf, grid, 1)
    assert "DecodeError" in wf.reports[0].failures[victim] and "posix.system" in wf.reports[0].failures[victim]
    assert STATE_RECORD not in grid.contexts[victim].state.config_records  # it forgot the session


def test_the_saved_state_holds_the_protocol_state_only(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir), N)
    snapshots: list = []

    def tamper(nid, m):
        saved = grid.contexts[nid].state.config_records.get(STATE_RECORD)
        if saved is not None:
            snapshots.append(load_state(saved["state"]))
        return m

    grid.tamper = tamper
    run_rounds(_workflow(keys_dir), grid, 1)
    kinds = {type(s).__name__ for s in snapshots}
    assert kinds == {"KeysAdvertised", "KeysShared", "InputSent", "SurvivorsVouched"}
    assert all(STATE_RECORD not in c.state.config_records for c in grid.contexts.values())  # done: forgotten


def test_a_plain_train_message_is_refused_and_other_messages_pass(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir), N)
    nid = grid.node_ids[0]
    plain = Message(RecordDict(), dst_node_id=nid, message_type=MessageType.TRAIN)
    with pytest.raises(ProtocolViolation, match="only through secure aggregation"):
        grid.app(plain, grid.contexts[nid])
    import flwr.compat.common.recorddict_compat as compat
    from flwr.common import EvaluateIns, ndarrays_to_parameters

    from flower_helpers import SHAPES

    ins = compat.evaluateins_to_recorddict(
        EvaluateIns(ndarrays_to_parameters([np.zeros(s, dtype=np.float32) for s in SHAPES]), {}), True)
    ev = Message(ins, dst_node_id=nid, message_type=MessageType.EVALUATE)
    ev.metadata.__dict__["_message_id"] = "x"
    reply = grid.app(ev, grid.contexts[nid])  # evaluate is none of secagg's business: it passes untouched
    assert compat.recorddict_to_evaluateres(reply.content).loss == 0.25 and RECORD not in reply.content.config_records


def test_a_train_message_before_the_session_is_refused(task_identity, keys_dir):
    grid = InlineGrid(_app(keys_dir), N)
    nid = grid.node_ids[0]
    kb = KeysBroadcast(b"s" * 32, 0, (), ())
    msg = Message(RecordDict({RECORD: ConfigRecord({K_MSG: kb.to_bytes()})}), dst_node_id=nid,
                  message_type=MessageType.TRAIN)
    with pytest.raises(UnexpectedMessage, match="no secagg session in progress"):
        grid.app(msg, grid.contexts[nid])
    garbage = Message(RecordDict({RECORD: ConfigRecord({K_MSG: b"\x03\x09junk"})}), dst_node_id=nid,
                      message_type=MessageType.TRAIN)
    with pytest.raises(DecodeError):
        grid.app(garbage, grid.contexts[nid])


def test_mod_options_are_checked(keys_dir):
    with pytest.raises(InsecureParameterError, match="insecure_no_pki"):
        secagg_mod()
    with pytest.raises(ConfigurationError, match="both signing_key"):
        secagg_mod(signing_key=keys.SigningKey.generate())
    with pytest.raises(ConfigurationError, match="contradicts"):
        secagg_mod(insecure_no_pki=True, trusted_keys=keys_dir / "allow-list.txt")
    with pytest.raises(ConfigurationError, match="min_noise_multiplier"):
        secagg_mod(insecure_no_pki=True, min_noise_multiplier=-1)
    with pytest.raises(ConfigurationError, match="allow-list"):
        secagg_mod(signing_key=keys.SigningKey.generate(), trusted_keys=keys_dir / "missing.txt")
    assert secagg_mod(accept_honest_but_curious=True).signing_key is None  # no PKI needed without signatures


@pytest.mark.parametrize("options, match", [
    (dict(), "trusted_keys"),
    (dict(insecure_no_pki=True, num_shares=5, reconstruction_threshold=6), "exceeds"),
    (dict(insecure_no_pki=True, graph="ring"), "graph"),
    (dict(insecure_no_pki=True, modulus_range=1000), "power of two"),
    (dict(insecure_no_pki=True, adversary="active", threat=None, bits=1), "bits"),
    (dict(adversary="honest-but-curious", insecure_no_pki=True), "active variant only"),
    (dict(insecure_no_pki=True, noise_multiplier=1.0, clipping_range=2.0), "does not apply with distributed DP"),
    (dict(insecure_no_pki=True, clip_norm=1.0), "distributed DP only"),
    (dict(insecure_no_pki=True, noise_multiplier=1.0, accountant="auto"), "accountant"),
    (dict(insecure_no_pki=True, timeout=0), "timeout"),
])
def test_workflow_options_are_checked(options, match):
    err = InsecureParameterError if match == "trusted_keys" else ConfigurationError
    with pytest.raises(err, match=match):
        SecAggWorkflow(**options)


def test_insecure_no_pki_runs_the_active_variant_without_identities(task_identity):
    grid = InlineGrid(ClientApp(client_fn=client_fn, mods=[secagg_mod(insecure_no_pki=True)]), N)
    wf = SecAggWorkflow(insecure_no_pki=True)
    run_rounds(wf, grid, 1)
    (report,) = wf.reports
    assert report.aborted is None and len(report.survivors) == N and report.config.consistency_check
    assert dataclasses.is_dataclass(report)
