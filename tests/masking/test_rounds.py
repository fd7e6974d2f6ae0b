"""The round tables alone, as h11's test_state.py drives its state machine: every path
through them, terminal states, and the agreement between the client's and the server's
tables (the message that closes a server round is the one that opens the client's)."""

from __future__ import annotations

import pytest

from secagg.masking import _messages as M
from secagg.masking import rounds as R


def walk(table, start, events):
    state = start
    for ev in events:
        state = table[(state, ev)]
    return state


@pytest.mark.parametrize("active", [True, False])
def test_client_table_runs_the_session_in_order_and_ends(active):
    table = R.client_transitions(active)
    opening = [m for m, r in R.OPENS.items() if r in R.rounds(active)]
    assert walk(table, R.ClientIdle, opening) is R.ClientDone
    assert len(opening) == R.round_trips(active) == (5 if active else 4)
    assert not any(s is R.ClientDone for s, _ in table)  # nothing after done
    # exactly one way forward from each state
    froms = [s for s, _ in table]
    assert len(froms) == len(set(froms))


def test_the_active_table_never_unmasks_before_the_survivors_are_signed():
    active, hbc = R.client_transitions(True), R.client_transitions(False)
    assert (R.InputSent, M.UnmaskRequest) not in active and (R.InputSent, M.ConsistencyRequest) in active
    assert (R.InputSent, M.UnmaskRequest) in hbc and (R.InputSent, M.ConsistencyRequest) not in hbc


@pytest.mark.parametrize("active", [True, False])
def test_server_table_collects_each_answer_then_closes(active):
    table = R.server_transitions(active)
    state = table[(R.ServerIdle, R.Start)]
    seen = []
    while state is not R.ServerDone:
        answer = next(m for m, r in R.ANSWERS.items() if r is state.round)
        assert table[(state, answer)] is state  # collecting keeps the state
        seen.append(state.round)
        state = table[(state, R.CloseRound)]
    assert tuple(seen) == R.rounds(active)


@pytest.mark.parametrize("active", [True, False])
def test_client_and_server_tables_agree_round_by_round(active):
    client, server = R.client_transitions(active), R.server_transitions(active)
    cstate, sstate = R.ClientIdle, server[(R.ServerIdle, R.Start)]
    while sstate is not R.ServerDone:
        opener = next(m for m, r in R.OPENS.items() if r is sstate.round)
        cstate = client[(cstate, opener)]  # the server's round is opened by this message...
        assert cstate.round is sstate.round  # ...and the client answers that same round
        sstate = server[(sstate, R.CloseRound)]
    assert cstate is R.ClientDone


def test_every_message_class_opens_or_answers_exactly_one_round():
    classes = {M.StartSession, M.AdvertiseKeys, M.KeysBroadcast, M.ShareKeys, M.ForwardShares, M.MaskedInput,
               M.ConsistencyRequest, M.ConsistencyResponse, M.UnmaskRequest, M.UnmaskResponse}
    assert set(R.OPENS) | set(R.ANSWERS) == classes and not set(R.OPENS) & set(R.ANSWERS)
    assert sorted(R.OPENS.values()) == sorted(R.ANSWERS.values()) == sorted(R.Round)
    assert R.ROUNDS == tuple(r.value for r in R.Round)


def test_state_records_are_frozen():
    import dataclasses

    for cls in (R.KeysAdvertised, R.KeysShared, R.InputSent, R.SurvivorsVouched, R.ClientDone, R.AwaitKeys,
                R.AwaitShares, R.AwaitInputs, R.AwaitVouchers, R.AwaitShareReveals, R.ServerDone, R.ServerAborted):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
