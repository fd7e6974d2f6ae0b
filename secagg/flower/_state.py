"""A protocol client's state between two Flower messages, as bytes in ``Context.state``.

Flower may run each message of a node in a different process (a Ray actor in simulation, a
fresh ClientApp process in deployment), so the client's state — a frozen dataclass of
:mod:`secagg.masking.rounds` holding its X25519 keys, seeds and shares — travels as bytes
in the node's own ``Context.state`` (which Flower keeps on the node and never sends).

The codec is :mod:`pickle` with two restrictions: :class:`secagg.keys.AgreementKey` is
written as its 32 raw bytes, and loading resolves only the classes a client state is made
of (:data:`_ALLOWED`); anything else raises :class:`~secagg.errors.DecodeError`, so bytes
that were tampered with cannot run code.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from .. import keys
from ..errors import DecodeError
from ..masking import rounds

__all__ = ["dump_state", "load_state"]

_CLIENT_STATES = ("ClientIdle", "KeysAdvertised", "KeysShared", "InputSent", "SurvivorsVouched", "ClientDone")


def _agreement_key(raw: bytes) -> keys.AgreementKey:
    return keys.AgreementKey.from_bytes(raw)


_ALLOWED = {
    **{("secagg.masking.rounds", name): getattr(rounds, name) for name in _CLIENT_STATES},
    (__name__, "_agreement_key"): _agreement_key,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "set"): set,
}
_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
          ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
          ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
          ("numpy._core.numeric", "_frombuffer")}


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, keys.AgreementKey):
            return _agreement_key, (obj.to_bytes(),)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in _NUMPY:
            return super().find_class(module, name)
        raise DecodeError(f"a saved client state may not refer to {module}.{name}")


def dump_state(state: rounds.ClientState) -> bytes:
    """The bytes of a client state (a frozen dataclass of :mod:`secagg.masking.rounds`)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buf.getvalue()


def load_state(data: Any) -> rounds.ClientState:
    """Inverse of :func:`dump_state`; :class:`DecodeError` for anything that is not a client state."""
    if not isinstance(data, bytes):
        raise DecodeError("a saved client state must be bytes")
    try:
        state = _Unpickler(io.BytesIO(data)).load()
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a malformed state
        raise DecodeError(f"the saved client state is malformed: {type(exc).__name__}") from None
    if type(state).__name__ not in _CLIENT_STATES or type(state).__module__ != rounds.__name__:
        raise DecodeError(f"the saved client state is a {type(state).__name__}, not a client state")
    return state
