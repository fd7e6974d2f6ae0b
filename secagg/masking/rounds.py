"""The round structure of SecAgg / SecAgg+ in one place: every state transition lives here.

Bonawitz et al. (CCS 2017, Fig. 4) rounds, as used by Bell et al. (CCS 2020):

====================  =========================================  ===========================
round                 server -> client (triggers the round)      client -> server (answer)
====================  =========================================  ===========================
advertise_keys        StartSession (session id)                  AdvertiseKeys (c_pk, s_pk, sig)
share_keys            KeysBroadcast (neighbours' keys)           ShareKeys (AEAD share ciphertexts)
masked_input          ForwardShares (ciphertexts for me)         MaskedInput (y_u)
consistency_check     ConsistencyRequest (survivor set U3)       ConsistencyResponse (sig over U3)
unmasking             UnmaskRequest (U3, dropped set, sigs)      UnmaskResponse (shares)
====================  =========================================  ===========================

Like h11's ``_state.py``, this file does not know which role it plays beyond the two
tables; ``client.py`` and ``server.py`` look their transitions up here and raise
:class:`~secagg.errors.UnexpectedMessage` for any (state, event) pair that is not listed.
``consistency_check`` is the active-adversary round; with ``consistency_check=False`` the
server takes the ``"skip"`` edge and the client accepts an ``UnmaskRequest`` right after
its masked input.
"""

from __future__ import annotations

__all__ = ["ROUNDS", "CLIENT_TRANSITIONS", "SERVER_TRANSITIONS", "CLIENT_ROUND_OF_STATE"]

#: the protocol rounds in order (the names accepted by ``dropout`` schedules)
ROUNDS: tuple[str, ...] = ("advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking")

# ---------------------------------------------------------------------------- client
#: (client state, message type received) -> next client state
CLIENT_TRANSITIONS: dict[tuple[str, str], str] = {
    ("idle", "StartSession"): "keys_advertised",
    ("keys_advertised", "KeysBroadcast"): "keys_shared",
    ("keys_shared", "ForwardShares"): "input_sent",
    ("input_sent", "ConsistencyRequest"): "survivors_signed",  # active variant only
    ("input_sent", "UnmaskRequest"): "done",  # consistency_check=False only
    ("survivors_signed", "UnmaskRequest"): "done",
}
#: the round a client is in once it reached a state (for error messages)
CLIENT_ROUND_OF_STATE: dict[str, str] = {
    "idle": "advertise_keys",
    "keys_advertised": "share_keys",
    "keys_shared": "masked_input",
    "input_sent": "consistency_check",
    "survivors_signed": "unmasking",
    "done": "finished",
    "aborted": "aborted",
}

# ---------------------------------------------------------------------------- server
#: (server state, event) -> next server state; events are message type names,
#: "start", "close_round" (the driver's deadline) and "skip" (variant without check)
SERVER_TRANSITIONS: dict[tuple[str, str], str] = {
    ("idle", "start"): "advertise_keys",
    ("advertise_keys", "AdvertiseKeys"): "advertise_keys",
    ("advertise_keys", "close_round"): "share_keys",
    ("share_keys", "ShareKeys"): "share_keys",
    ("share_keys", "close_round"): "masked_input",
    ("masked_input", "MaskedInput"): "masked_input",
    ("masked_input", "close_round"): "consistency_check",
    ("consistency_check", "skip"): "unmasking",  # consistency_check=False
    ("consistency_check", "ConsistencyResponse"): "consistency_check",
    ("consistency_check", "close_round"): "unmasking",
    ("unmasking", "UnmaskResponse"): "unmasking",
    ("unmasking", "close_round"): "done",
}
