"""PartySet: the survivor/dropped sets of the wire, as a mask (membership O(1), one
bitmap per set however many requests carry it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg.errors import DecodeError, InputError
from secagg.masking import _messages as M
from secagg.masking._messages import PartySet


@st.composite
def sets(draw):
    n = draw(st.integers(0, 300))
    ids = draw(st.sets(st.integers(0, n - 1), max_size=n)) if n else set()
    return n, ids


@given(sets())
@settings(max_examples=150, deadline=None)
def test_a_party_set_is_its_ids(case):
    n, ids = case
    s = PartySet(n, sorted(ids))
    assert s.ids == tuple(sorted(ids)) and len(s) == len(ids) and list(s) == sorted(ids)
    assert s == tuple(sorted(ids)) and s == frozenset(ids) and s == PartySet(n, list(ids))
    for i in range(-2, n + 2):
        assert (i in s) == (i in ids)
    holders = np.arange(n, dtype=np.int64)[::3]
    assert s.among(holders) == [int(v) for v in holders if int(v) in ids]
    np.testing.assert_array_equal(s.mask, np.isin(np.arange(n), sorted(ids)))
    assert hash(s) == hash(PartySet(n, sorted(ids)))


@given(sets(), st.integers(0, M.MAX_PARTIES - 1))
@settings(max_examples=100, deadline=None)
def test_requests_round_trip_through_bytes(case, recipient):
    n, ids = case
    survivors = PartySet(n, sorted(ids))
    dropped = PartySet(n, sorted(set(range(n)) - ids)[:5])
    sess = bytes(16)
    for msg in (M.ConsistencyRequest(sess, recipient, n, survivors),
                M.UnmaskRequest(sess, recipient, n, tuple(sorted(ids)), dropped, ((1, bytes(16)),))):
        back = M.decode_message(msg.to_bytes())
        assert back == msg and back.survivors == survivors and isinstance(back.survivors, PartySet)


def test_a_set_over_other_parties_or_out_of_range_ids_is_refused():
    with pytest.raises(InputError, match="in \\[0, 4\\)"):
        PartySet(4, [4])
    with pytest.raises(InputError, match="integers"):
        PartySet(4, [0.5])
    with pytest.raises(InputError, match="over 5 parties"):
        M.ConsistencyRequest(bytes(16), 0, 4, PartySet(5, [1]))
    assert PartySet(4, [1]) != PartySet(5, [1])
    assert 1.0 not in PartySet(4, [1]) and True not in PartySet(4, [1])


def test_the_mask_cannot_be_changed_behind_the_set():
    s = PartySet(8, [1, 2])
    with pytest.raises(ValueError):
        s.mask[3] = True
    raw = np.zeros(8, dtype=bool)
    t = PartySet.from_mask(raw)
    raw[0] = True
    assert 0 not in t and len(t) == 0


def test_nonzero_padding_bits_are_a_decode_error():
    msg = M.ConsistencyRequest(bytes(16), 0, 3, (0, 2)).to_bytes()
    with pytest.raises(DecodeError, match="padding"):
        M.decode_message(msg[:-1] + bytes((msg[-1] | 1,)))
