"""A client's security policy: what it requires of any session it joins, enforced against
whatever the server announces (issue: a server must not be able to downgrade a client).

A client that receives its session parameters from the server (over the network, in a
Flower workflow) builds its :class:`~secagg.masking.MaskingConfig` through
:meth:`SecurityPolicy.config_for`, which checks the announcement rule by rule and raises
:class:`~secagg.errors.InsecureParameterError` naming the violated rule. The defaults are
the parameter finder's (:mod:`secagg.masking.params`): an active server colluding with
5 % of the clients, security ``2^-40``. Every weakening is explicit and names the weaker
threat model: ``ThreatModel(adversary="honest-but-curious")``, a lower
``corrupt_fraction``, fewer ``security_bits``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigurationError, InsecureParameterError
from .config import MaskingConfig
from .params import ADVERSARIES, ThreatModel

__all__ = ["SecurityPolicy"]


@dataclass(frozen=True)
class SecurityPolicy:
    """Rules a client holds every announced session to.

    Parameters
    ----------
    threat:
        the client's own :class:`~secagg.masking.ThreatModel`. The announced threshold
        and degree must be secure under it (rule ``threat model``), and an active-model
        client refuses a session without the consistency round (rule ``consistency
        check required``).
    min_threshold:
        refuse a Shamir threshold below this (rule ``minimum threshold``).
    min_degree:
        refuse a SecAgg+ degree below this (rule ``minimum degree``).
    min_survivors:
        refuse a session whose survivor floor is below this, e.g. the number of noise
        contributions a distributed-DP guarantee needs (rule ``minimum survivors``).

    Raises
    ------
    ConfigurationError
        negative or non-integer minimums.
    """

    threat: ThreatModel = ThreatModel()
    min_threshold: int | None = None
    min_degree: int | None = None
    min_survivors: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threat, ThreatModel):
            raise ConfigurationError(f"threat must be a ThreatModel, got {type(self.threat).__name__}")
        for name in ("min_threshold", "min_degree", "min_survivors"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigurationError(f"{name} must be a positive integer or None, got {v!r}")

    def config_for(
        self, *, n: int, dim: int, bits: int, threshold: int, graph: str, k: int, adversary: str,
        min_survivors: int,
    ) -> MaskingConfig:
        """The session's config from an announcement, or :class:`InsecureParameterError`
        naming the first rule it violates (the client then sends nothing).

        The announced ``adversary`` decides which protocol variant runs (both sides must
        agree on it); the client's own ``threat`` decides what is secure.
        """
        if adversary not in ADVERSARIES:
            raise InsecureParameterError(f"policy: the server announced an unknown adversary model {adversary!r}")
        if adversary != "active" and self.threat.active:
            raise InsecureParameterError(
                "policy rule 'consistency check required': the server announced a session for an honest-but-curious "
                "server (no consistency round), in which a server that lies about who dropped can unmask this "
                "client's input; accept it only with an honest-but-curious threat model"
            )
        if self.min_threshold is not None and threshold < self.min_threshold:
            raise InsecureParameterError(
                f"policy rule 'minimum threshold': the server announced t={threshold}, below this client's "
                f"minimum {self.min_threshold}"
            )
        if graph == "sparse" and self.min_degree is not None and k < self.min_degree:
            raise InsecureParameterError(
                f"policy rule 'minimum degree': the server announced a SecAgg+ degree k={k}, below this client's "
                f"minimum {self.min_degree}"
            )
        if self.min_survivors is not None and min_survivors < self.min_survivors:
            raise InsecureParameterError(
                f"policy rule 'minimum survivors': the server announced a survivor floor of {min_survivors}, below "
                f"this client's minimum {self.min_survivors}"
            )
        try:
            return MaskingConfig(
                n=n, dim=dim, bits=bits, threshold=threshold, graph=graph, k=k, min_survivors=min_survivors,
                threat=dataclasses.replace(self.threat, adversary=adversary),
            )
        except InsecureParameterError as exc:
            raise InsecureParameterError(f"policy rule 'threat model': {exc}") from None
