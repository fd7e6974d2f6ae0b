"""secagg's secure aggregation inside Flower: a server workflow and a client mod that
replace Flower's ``SecAggPlusWorkflow`` and ``secaggplus_mod``.

Server (``ServerApp``)::

    from secagg.flower import SecAggWorkflow
    workflow = DefaultWorkflow(fit_workflow=SecAggWorkflow(trusted_keys="keys/allow-list.txt"))

Client (``ClientApp``)::

    from secagg.flower import secagg_mod, keys_in_directory
    app = ClientApp(client_fn=client_fn, mods=[secagg_mod(signing_key=keys_in_directory("keys"),
                                                          trusted_keys="keys/allow-list.txt")])

The protocol is :mod:`secagg.masking` (sans-IO client and server, driven by
:class:`~secagg.masking.Session`); this package only carries its messages as bytes in
Flower ``RecordDict`` s (:mod:`secagg.flower._wire`), holds each node to its own
:class:`~secagg.masking.SecurityPolicy`, and maps Flower's results to ring vectors and
back (:mod:`secagg.flower._encoding`). Against Flower's SecAgg+: AES-CTR masks from
256-bit seeds (not a 32-bit Mersenne Twister seed), a consistency round and signed keys
against an active server by default, parameters from a stated threat model, a survivor
floor each client enforces, and optional distributed DP with an accountant. See
``docs/flower.md``.

Needs the ``flower`` extra: ``pip install "secagg[flower]"``.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('secagg.flower needs Flower: pip install "secagg[flower]"') from exc

from .mod import SecAggMod, secagg_mod
from .pki import ALLOW_LIST, key_from_node_config, keys_in_directory, load_trusted_keys, provision_keys
from .workflow import RoundReport, SecAggWorkflow

__all__ = [
    "ALLOW_LIST",
    "RoundReport",
    "SecAggMod",
    "SecAggWorkflow",
    "key_from_node_config",
    "keys_in_directory",
    "load_trusted_keys",
    "provision_keys",
    "secagg_mod",
]
