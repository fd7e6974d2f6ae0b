"""Signing keys for the active-server variant inside Flower: who holds which key, and
the allow-list both sides trust.

Against an active server every client signs its fresh protocol keys with a long-term
Ed25519 key, and every client checks its neighbours' signatures against keys it trusts
*independently of the server* (otherwise the server could invent the other clients).
Flower's own node authentication is not visible to a ServerApp or a mod, so secagg brings
its own keys, in the formats of ``secagg keygen`` (:mod:`secagg.transport`):

* each node holds one identity key file (PKCS#8 PEM, mode 0600);
* the allow-list (``<id> <public key hex>`` per line) lists the public keys of every node
  that may take part. The ids in it are labels (e.g. the partition id); the session's
  party ids come from the sorted Flower node ids, not from this file.

The :class:`~secagg.flower.SecAggWorkflow` gets the allow-list (``trusted_keys=``) and
admits only nodes whose key is on it; :func:`~secagg.flower.secagg_mod` gets the node's
key (``signing_key=``, a key or a function of the Flower ``Context``) and the same
allow-list, and refuses a neighbour whose key is not on it.

Simulation: :func:`provision_keys` writes ``node-<i>.key`` for ``i = 0..N-1`` and
``allow-list.txt``; :func:`keys_in_directory` picks ``node-<partition-id>.key`` for each
simulated node. Deployment: give each SuperNode its key file with
``flower-supernode --node-config "secagg-key='/path/node.key'"`` and use
:func:`key_from_node_config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .. import keys
from ..errors import ConfigurationError
from ..transport import allow_list_line, load_allow_list, load_identity_key, write_identity_key

__all__ = ["provision_keys", "keys_in_directory", "key_from_node_config", "load_trusted_keys", "ALLOW_LIST"]

#: the allow-list file :func:`provision_keys` writes
ALLOW_LIST = "allow-list.txt"


def provision_keys(directory: str | os.PathLike, num_nodes: int, *, overwrite: bool = False) -> Path:
    """Write ``num_nodes`` identity keys ``node-<i>.key`` and their allow-list into ``directory``.

    Returns the path of the allow-list. Raises :class:`ConfigurationError` for
    ``num_nodes < 1`` or a key file that already exists (without ``overwrite``).
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ConfigurationError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    root = Path(directory)
    lines = [allow_list_line(i, write_identity_key(root / f"node-{i}.key", overwrite=overwrite).public_bytes())
             for i in range(num_nodes)]
    path = root / ALLOW_LIST
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def keys_in_directory(directory: str | os.PathLike, *, config_key: str = "partition-id"
                      ) -> Callable[[Any], keys.SigningKey]:
    """For simulations: a function ``Context -> SigningKey`` that loads
    ``directory/node-<context.node_config[config_key]>.key`` (see :func:`provision_keys`).

    The function raises :class:`ConfigurationError` when the node has no such config
    entry or the file is missing."""
    root = Path(directory)

    def load(context: Any) -> keys.SigningKey:
        label = getattr(context, "node_config", {}).get(config_key)
        if label is None:
            raise ConfigurationError(f"the node's config has no {config_key!r} to pick its key file in {root}")
        return load_identity_key(root / f"node-{label}.key")

    return load


def key_from_node_config(name: str = "secagg-key") -> Callable[[Any], keys.SigningKey]:
    """For deployments: a function ``Context -> SigningKey`` that loads the key file named by
    the node's config entry ``name`` (``flower-supernode --node-config "secagg-key='...'"``)."""

    def load(context: Any) -> keys.SigningKey:
        path = getattr(context, "node_config", {}).get(name)
        if not isinstance(path, str):
            raise ConfigurationError(f"the node's config has no {name!r} entry naming its secagg key file")
        return load_identity_key(path)

    return load


def load_trusted_keys(source: str | os.PathLike | Mapping[Any, bytes] | Iterable[bytes]) -> frozenset[bytes]:
    """The set of trusted 32-byte Ed25519 public keys from an allow-list file, a mapping
    ``{label: key}`` (e.g. :func:`secagg.transport.load_allow_list`'s result) or
    an iterable of keys.

    Raises :class:`ConfigurationError` for a malformed file, a key that is not 32 bytes,
    a repeated key or an empty set.
    """
    if isinstance(source, (str, os.PathLike)):
        values: list[bytes] = list(load_allow_list(source).values())
    elif isinstance(source, Mapping):
        values = list(source.values())
    elif isinstance(source, (bytes, bytearray)):
        raise ConfigurationError("trusted_keys must be a collection of keys or an allow-list path, not one key")
    else:
        try:
            values = list(source)
        except TypeError:
            raise ConfigurationError(
                f"trusted_keys must be an allow-list path, a mapping or keys, got {type(source).__name__}") from None
    if not values:
        raise ConfigurationError("trusted_keys is empty: no node could take part")
    if not all(isinstance(v, (bytes, bytearray)) and len(v) == 32 for v in values):
        raise ConfigurationError("every trusted key must be a 32-byte Ed25519 public key")
    out = frozenset(bytes(v) for v in values)
    if len(out) != len(values):
        raise ConfigurationError("trusted_keys lists a key twice")
    return out
