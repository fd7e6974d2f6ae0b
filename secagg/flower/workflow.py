"""The server side of secagg inside Flower: a fit workflow that sits where Flower users put
``SecAggPlusWorkflow`` (``DefaultWorkflow(fit_workflow=SecAggWorkflow(...))``).

One Flower round is one secagg session, driven by :class:`secagg.masking.Session` (the
protocol server, validation and cost counting, unchanged); this module only moves its
bytes through ``grid.send_and_receive`` (one call per protocol round, ``timeout`` seconds
each) and talks to the Flower strategy:

1. ``strategy.configure_fit`` samples the nodes; their sorted node ids are the parties
   ``0..n-1``; the session's parameters come from the parameter finder (or the given
   ``num_shares`` / ``reconstruction_threshold``, which must be secure under the threat
   model: a weaker pair raises :class:`~secagg.errors.InsecureParameterError`);
2. round ``advertise_keys``: the announcement (:mod:`secagg.flower._wire`) and each node's
   ``StartSession``; a node answers with its signed keys and its verification key, which
   must be on the allow-list (``trusted_keys``) against an active server;
3. the following rounds carry the session's messages; the masked-input round also
   carries the strategy's fit instructions, and the nodes train there (as in Flower's
   SecAgg+);
4. once the session is unmasked, the ring sum of the survivors is decoded
   (:mod:`secagg.flower._encoding`), given to the strategy as every survivor's result
   (``strategy.aggregate_fit`` then returns it), and the new global model is stored.

A session that aborts (too few survivors, a survivor floor the clients enforce, a key
that cannot be rebuilt) leaves the global model unchanged for that round, as Flower's
workflow does; :attr:`SecAggWorkflow.reports` says why. With distributed DP, the workflow
keeps a :mod:`secagg.dp` accountant over the rounds and refuses (raises
:class:`~secagg.errors.BudgetExceeded`) a round whose worst case would exceed
``target_epsilon``.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field, replace
from logging import DEBUG, ERROR, INFO, WARNING
from typing import Any

import numpy as np

from .._costs import Costs
from ..dp._accountant import ACCOUNTANTS, make_accountant
from ..dp._calibration import smallest_meeting
from ..dp.aggregators import resolve_noise_multiplier
from ..errors import (
    BudgetExceeded,
    ConfigurationError,
    InsecureParameterError,
    ProtocolAbort,
    SecAggError,
)
from ..masking.config import MaskingConfig
from ..masking._messages import StartSession
from ..masking.params import ThreatModel
from ..masking.rounds import Round
from ..masking.session import Session
from ..quantize import check_out_of_range_policy
from ._encoding import DPEncoding, Encoding, WeightedEncoding, unflatten
from ._wire import (
    K_ANNOUNCEMENT,
    K_DIRECTORY,
    K_MSG,
    K_SECONDS,
    K_VERIFY_KEY,
    RECORD,
    Announcement,
    pack_directory,
    session_nonce,
)
from .pki import load_trusted_keys

__all__ = ["SecAggWorkflow", "RoundReport"]


@dataclass
class RoundReport:
    """What one Flower round of :class:`SecAggWorkflow` did and cost.

    Attributes
    ----------
    round:
        the Flower round.
    node_ids:
        the sampled nodes, sorted: party ``u`` is ``node_ids[u]``.
    survivors:
        node ids whose updates are in the aggregate.
    dropped:
        ``{node id: round name}``: the protocol round at which a node went silent (no
        answer before ``timeout``, an error reply, or a rejected message).
    failures:
        ``{node id: reason}``: error replies (a node that refused a server message, or
        whose training failed) and answers the workflow rejected.
    misbehaving, excluded:
        ``{node id: reason}`` from the protocol server.
    config:
        the session's :class:`~secagg.masking.MaskingConfig` (``None`` before it existed).
    costs:
        the session's :class:`~secagg._costs.Costs`, per party (index = party id):
        protocol bytes up and down, each node's protocol seconds (as it reported them),
        the server's seconds (decoding included in ``unmasking``).
    ring_sum:
        the survivors' ring sum (uint ``(dim,)``), what the server learns.
    aggregate:
        the decoded result as layers (float64): the weighted mean of the survivors'
        models, or, with distributed DP, the new global model.
    weight_total:
        the survivors' total weight ``sum num_examples / max_weight`` (weighted layout).
    clients_clipped:
        survivors that clipped a value to ``clipping_range`` (``out_of_range="clip"``).
    noise_multiplier, noise_std, epsilon, delta:
        distributed DP: the noise multiplier, the noise std per coordinate of the mean
        update, and the cumulative epsilon at ``delta`` after this round.
    aborted:
        why the round produced no aggregate (``None`` when it did).
    seconds:
        wall seconds of the whole round as the workflow saw it.
    """

    round: int
    node_ids: list[int] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    misbehaving: dict[int, str] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)
    config: MaskingConfig | None = None
    costs: Costs | None = None
    ring_sum: np.ndarray | None = None
    aggregate: list[np.ndarray] | None = None
    weight_total: float | None = None
    clients_clipped: int = 0
    noise_multiplier: float | None = None
    noise_std: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    aborted: str | None = None
    seconds: float = 0.0


def _fraction_or_count(value: Any, name: str, low: int) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be an int or a float in (0, 1], got {value!r}")
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise ConfigurationError(f"{name} as a float is a proportion in (0, 1], got {value!r}")
        return value
    if value < low:
        raise ConfigurationError(f"{name} as an integer must be at least {low}, got {value!r}")
    return int(value)


class SecAggWorkflow:
    """Secure aggregation of a Flower round with secagg (see the module docstring).

    Flower's ``SecAggPlusWorkflow`` parameters keep their meaning (``num_shares`` to
    ``timeout``); the others are secagg's.

    Parameters
    ----------
    num_shares:
        shares of each client's secrets, i.e. the client and its ``num_shares - 1``
        neighbours on the SecAgg+ graph (an odd int, or at least the number of sampled
        nodes for the complete graph; or a float: that proportion of the sampled nodes,
        rounded up to odd). Default: the parameter finder's degree for the threat model.
    reconstruction_threshold:
        shares needed to rebuild a secret (an int, or a float: that proportion of
        ``num_shares``). Default: the smallest secure threshold. An insecure value raises
        :class:`~secagg.errors.InsecureParameterError` when the round starts.
    max_weight:
        ``num_examples`` that maps to weight 1 (default 1000.0); a node reporting more
        refuses to send its input (Flower's would overflow silently).
    clipping_range:
        per-coordinate bound of the model's values (default 8.0); a node with a value
        beyond it refuses to send (``out_of_range="raise"``) or clips it and is counted
        (``"clip"``).
    bits:
        the ring ``Z_2^bits`` (default 32; ``modulus_range=2**bits`` is accepted too).
        Replaces Flower's ``quantization_range``: secagg uses the finest resolution that
        keeps the sum of ``n`` values in the ring, ``clipping_range * n / (2^(bits-1) - 1)``.
    timeout:
        seconds to wait for the nodes' answers in each protocol round (``None``: wait for
        all).
    adversary, threat:
        ``"active"`` (default: the consistency round, signed keys) or
        ``"honest-but-curious"`` (Flower SecAgg+'s model); or a full
        :class:`~secagg.masking.ThreatModel`.
    graph:
        ``"sparse"`` (SecAgg+, default) or ``"complete"`` (SecAgg).
    min_survivors:
        the survivor floor the nodes enforce (default: the parameter finder's).
    trusted_keys:
        the allow-list of the nodes' Ed25519 keys (file, mapping or keys;
        :mod:`secagg.flower.pki`); required against an active server unless
        ``insecure_no_pki=True`` (then any key is accepted: the server could be a sybil
        of every client and nothing would tell).
    noise_multiplier, target_epsilon, delta, num_rounds:
        distributed DP (DP-FedAvg): every node adds its share of discrete Gaussian
        (``mechanism="ddg"``) or Skellam noise to its clipped update, so that with
        ``dp_min_clients`` survivors the sum carries noise of std ``noise_multiplier *
        clip_norm``. Give ``noise_multiplier``, or ``target_epsilon`` (at ``delta``) and
        the noise is calibrated so ``num_rounds`` rounds (default: the run's) meet it on
        the ``accountant`` (``"pld"`` default, as in :mod:`secagg.dp`, or ``"rdp"``). With ``target_epsilon`` a
        round that would exceed it raises :class:`~secagg.errors.BudgetExceeded`.
    clip_norm:
        L2 norm bound of each update (DP only; default 1.0).
    dp_min_clients:
        survivors the noise is calibrated for (default: the survivor floor); the nodes
        refuse to unmask fewer.

    Attributes
    ----------
    reports:
        one :class:`RoundReport` per round run.
    accountant:
        the DP accountant (``None`` without DP).

    Raises
    ------
    ConfigurationError
        contradictory or malformed options (one line naming the option).
    InsecureParameterError
        the active variant without ``trusted_keys`` or ``insecure_no_pki``.
    """

    def __init__(
        self,
        num_shares: int | float | None = None,
        reconstruction_threshold: int | float | None = None,
        *,
        max_weight: float | None = None,
        clipping_range: float | None = None,
        bits: int = 32,
        modulus_range: int | None = None,
        timeout: float | None = None,
        adversary: str | None = None,
        threat: ThreatModel | None = None,
        graph: str = "sparse",
        min_survivors: int | None = None,
        out_of_range: str | None = None,
        trusted_keys: Any = None,
        insecure_no_pki: bool = False,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float = 1e-5,
        num_rounds: int | None = None,
        clip_norm: float | None = None,
        mechanism: str = "ddg",
        dp_min_clients: int | None = None,
        accountant: str = "pld",
    ) -> None:
        self.num_shares = _fraction_or_count(num_shares, "num_shares", 3)
        self.reconstruction_threshold = _fraction_or_count(reconstruction_threshold, "reconstruction_threshold", 1)
        if (isinstance(self.num_shares, int) and isinstance(self.reconstruction_threshold, int)
                and self.reconstruction_threshold > self.num_shares):
            raise ConfigurationError(f"reconstruction_threshold={self.reconstruction_threshold} exceeds "
                                     f"num_shares={self.num_shares}")
        if graph not in ("sparse", "complete"):
            raise ConfigurationError(f"graph must be 'sparse' or 'complete', got {graph!r}")
        if graph == "complete" and self.num_shares is not None:
            raise ConfigurationError("num_shares sets the SecAgg+ graph's degree; the complete graph has none")
        if modulus_range is not None:
            if isinstance(modulus_range, bool) or not isinstance(modulus_range, int) or modulus_range < 4 \
                    or modulus_range & (modulus_range - 1) or modulus_range > 2**64:
                raise ConfigurationError(f"modulus_range must be a power of two in [4, 2**64], got {modulus_range!r}")
            if bits != 32 and 1 << bits != modulus_range:
                raise ConfigurationError(f"bits={bits} and modulus_range={modulus_range} disagree: give one")
            bits = modulus_range.bit_length() - 1
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 64:
            raise ConfigurationError(f"bits must be an integer in [2, 64], got {bits!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ConfigurationError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if threat is not None and adversary is not None:
            raise ConfigurationError("give adversary= or threat=, not both (threat carries its adversary)")
        if threat is None:
            threat = ThreatModel(adversary=adversary or "active")
        elif not isinstance(threat, ThreatModel):
            raise ConfigurationError(f"threat must be a secagg.masking.ThreatModel, got {type(threat).__name__}")
        if min_survivors is not None and (isinstance(min_survivors, bool) or not isinstance(min_survivors, int)
                                          or min_survivors < 1):
            raise ConfigurationError(f"min_survivors must be a positive integer, got {min_survivors!r}")
        # the PKI
        if not threat.active and (trusted_keys is not None or insecure_no_pki):
            raise ConfigurationError("trusted_keys / insecure_no_pki apply to the active variant only (no signatures "
                                     "against an honest-but-curious server)")
        if trusted_keys is not None and insecure_no_pki:
            raise ConfigurationError("insecure_no_pki=True contradicts trusted_keys: give one or the other")
        if threat.active and trusted_keys is None and not insecure_no_pki:
            raise InsecureParameterError(
                "the active variant needs trusted_keys= (the allow-list of the nodes' keys, see secagg.flower.pki), "
                "or insecure_no_pki=True to accept any key (the server could then stand in for every client)")
        # differential privacy
        self.dp = noise_multiplier is not None or target_epsilon is not None
        if self.dp:
            for name, value in (("clipping_range", clipping_range), ("max_weight", max_weight),
                                ("out_of_range", out_of_range)):
                if value is not None:
                    raise ConfigurationError(
                        f"{name} does not apply with distributed DP (updates are clipped to clip_norm, an L2 norm, "
                        "and averaged with equal weights)")
            if mechanism not in ("ddg", "skellam"):
                raise ConfigurationError(f"mechanism must be 'ddg' or 'skellam', got {mechanism!r}")
            if accountant not in ACCOUNTANTS or accountant == "auto":
                raise ConfigurationError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
            if noise_multiplier is not None:
                resolve_noise_multiplier(noise_multiplier, None, delta, 1)  # validates it
            if target_epsilon is not None and not (isinstance(target_epsilon, (int, float))
                                                   and math.isfinite(target_epsilon) and target_epsilon > 0):
                raise ConfigurationError(f"target_epsilon must be a positive number, got {target_epsilon!r}")
            if not (isinstance(delta, float) and 0 < delta < 1):
                raise ConfigurationError(f"delta must be a float in (0, 1), got {delta!r}")
            if num_rounds is not None and (isinstance(num_rounds, bool) or not isinstance(num_rounds, int)
                                           or num_rounds < 1):
                raise ConfigurationError(f"num_rounds must be a positive integer, got {num_rounds!r}")
            c = 1.0 if clip_norm is None else clip_norm
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not (math.isfinite(c) and c > 0):
                raise ConfigurationError(f"clip_norm (an L2 norm) must be a positive number, got {clip_norm!r}")
            if dp_min_clients is not None and (isinstance(dp_min_clients, bool)
                                               or not isinstance(dp_min_clients, int) or dp_min_clients < 1):
                raise ConfigurationError(f"dp_min_clients must be a positive integer, got {dp_min_clients!r}")
            self.clip_norm: float | None = float(c)
        else:
            for name, value in (("clip_norm", clip_norm), ("dp_min_clients", dp_min_clients),
                                ("num_rounds", num_rounds)):
                if value is not None:
                    raise ConfigurationError(f"{name} applies to distributed DP only: give noise_multiplier= or "
                                             "target_epsilon= too")
            self.clip_norm = None
        bound = 8.0 if clipping_range is None else clipping_range
        weight = 1000.0 if max_weight is None else max_weight
        for name, v in (("clipping_range", bound), ("max_weight", weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive finite number, got {v!r}")
        self.clipping_range = float(bound)
        self.max_weight = float(weight)
        self.out_of_range = check_out_of_range_policy(out_of_range or "raise")
        self.bits = int(bits)
        self.timeout = None if timeout is None else float(timeout)
        self.threat = threat
        self.graph = graph
        self.min_survivors = min_survivors
        self.trusted_keys = None if trusted_keys is None else load_trusted_keys(trusted_keys)
        self.insecure_no_pki = bool(insecure_no_pki)
        self.noise_multiplier = None if noise_multiplier is None else float(noise_multiplier)
        self.target_epsilon = None if target_epsilon is None else float(target_epsilon)
        self.delta = float(delta)
        self.num_rounds = num_rounds
        self.mechanism = mechanism
        self.dp_min_clients = dp_min_clients
        self.accountant = make_accountant(accountant) if self.dp else None
        self.accountant_kind = accountant
        self.reports: list[RoundReport] = []

    # ------------------------------------------------------------------ Flower's entry point
    def __call__(self, grid: Any, context: Any) -> None:
        """Run one Flower round (``DefaultWorkflow`` calls this once per round)."""
        from flwr.server.compat.legacy_context import LegacyContext

        if not isinstance(context, LegacyContext):
            raise ConfigurationError(f"SecAggWorkflow runs as DefaultWorkflow(fit_workflow=...) with a LegacyContext, "
                                     f"got a {type(context).__name__}")
        t0 = time.perf_counter()
        report = RoundReport(round=0)
        self.reports.append(report)
        try:
            self._round(grid, context, report)
        finally:
            report.seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ session parameters
    def _config(self, n: int, dim: int) -> MaskingConfig:
        """The session's config for ``n`` nodes (Flower's num_shares / threshold mapped to ``k`` / ``t``)."""
        k = threshold = None
        graph = self.graph
        if self.num_shares is not None:
            shares = self.num_shares if isinstance(self.num_shares, int) else round(self.num_shares * n)
            if shares < n and shares % 2 == 0:
                if isinstance(self.num_shares, int):
                    raise ConfigurationError(
                        f"num_shares={shares} is even and below the {n} sampled nodes: the shares go to the client "
                        "and an even number of neighbours on the SecAgg+ graph, so num_shares must be odd")
                shares += 1  # a proportion: round up to the next odd number, as Flower does
            shares = max(3, shares)
            if shares >= n:
                graph, shares = "complete", n
            else:
                k = shares - 1
        holders = n if graph == "complete" else (k + 1 if k is not None else None)
        if self.reconstruction_threshold is not None:
            if isinstance(self.reconstruction_threshold, float):
                if holders is None:
                    holders = MaskingConfig(n=n, dim=1, graph=graph, threat=self.threat).num_holders
                threshold = max(1, round(self.reconstruction_threshold * holders))
            else:
                threshold = self.reconstruction_threshold
        return MaskingConfig(n=n, dim=dim, bits=self.bits, threshold=threshold, graph=graph, k=k, threat=self.threat,
                             min_survivors=self.min_survivors)

    def _dp_encoding(self, shapes: tuple, n: int, cfg: MaskingConfig, context: Any) -> tuple[DPEncoding, MaskingConfig]:
        n_min = self.dp_min_clients if self.dp_min_clients is not None else cfg.min_survivors
        if n_min > n:
            raise ConfigurationError(f"dp_min_clients={n_min} exceeds the {n} sampled nodes")
        if n_min > cfg.min_survivors:
            cfg = replace(cfg, min_survivors=n_min)  # the nodes refuse to unmask fewer noise shares
        clip_norm, z = self.clip_norm, self.noise_multiplier
        if clip_norm is None:  # pragma: no cover - __init__ sets it whenever DP is on
            raise ConfigurationError("distributed DP needs clip_norm")
        if z is None:
            rounds = self.num_rounds or int(getattr(getattr(context, "config", None), "num_rounds", 1) or 1)
            z = self.noise_multiplier = self._calibrate(shapes, clip_norm, n, n_min, rounds)
        enc = DPEncoding(shapes, clip_norm, z, self.mechanism, n_min)
        return enc, replace(cfg, dim=enc.dim(n, self.bits))

    def _calibrate(self, shapes: tuple, clip_norm: float, n: int, n_min: int, rounds: int) -> float:
        """The smallest noise multiplier (relative precision 1e-3) whose ``rounds`` rounds with
        ``n_min`` survivors stay within ``target_epsilon`` on this workflow's accountant
        (the event of the discrete mechanism itself, rounding included)."""
        assert self.target_epsilon is not None

        def eps(z: float) -> float:
            try:
                params = DPEncoding(shapes, clip_norm, z, self.mechanism, n_min).params(n, self.bits)
                event = params.dp_event(n_min)
            except ConfigurationError:
                return math.inf
            return make_accountant(self.accountant_kind).compose(event, rounds).get_epsilon(self.delta)

        lo = resolve_noise_multiplier(None, self.target_epsilon, self.delta, rounds) / (1 + 1e-9)  # Gaussian floor
        return smallest_meeting(eps, self.target_epsilon, start=lo, below=lo, grow=1.25, floor=lo, ceiling=1e6,
                                tolerance=1e-3,
                                what=f"no noise multiplier below 1e6 reaches epsilon={self.target_epsilon:g}")

    # ------------------------------------------------------------------ one round
    def _round(self, grid: Any, context: Any, report: RoundReport) -> None:
        import flwr.compat.common.recorddict_compat as compat
        from flwr.common import parameters_to_ndarrays
        from flwr.common.logger import log
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

        current_round = int(context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
        report.round = current_round
        parameters = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD],
                                                       keep_input=True)
        sampled = context.strategy.configure_fit(current_round, parameters, context.client_manager)
        if not sampled:
            report.aborted = "configure_fit selected no node"
            log(INFO, "configure_fit: no clients selected, cancel")
            return
        proxies = {proxy.node_id: proxy for proxy, _ in sampled}
        fitins = {proxy.node_id: ins for proxy, ins in sampled}
        node_ids = sorted(int(v) for v in proxies)
        report.node_ids = node_ids
        n = len(node_ids)
        log(INFO, "configure_fit: strategy sampled %s clients (out of %s)", n, context.client_manager.num_available())
        if n < 2:
            report.aborted = f"secure aggregation needs at least 2 nodes, {n} sampled"
            log(ERROR, "Secure aggregation needs at least 2 sampled nodes, got %s.", n)
            return
        reference = parameters_to_ndarrays(parameters)
        if not reference:
            raise ConfigurationError(
                "the global model is empty: secagg announces the model's shape before training, so give the "
                "strategy initial_parameters (or let the ClientApp answer get_parameters)")
        shapes = tuple(tuple(int(s) for s in a.shape) for a in reference)
        dtypes = [a.dtype for a in reference]
        size = sum(math.prod(s) for s in shapes)
        encoding: Encoding
        if self.dp:
            cfg = self._config(n, 1)
            encoding, cfg = self._dp_encoding(shapes, n, cfg, context)
            self._check_budget(encoding, n)
            report.noise_multiplier = self.noise_multiplier
        else:
            encoding = WeightedEncoding(shapes, self.clipping_range, self.max_weight, self.out_of_range)
            cfg = self._config(n, encoding.dim(n, self.bits))
        report.config = cfg
        announcement = Announcement(
            node_ids=tuple(node_ids), dim=cfg.dim, bits=cfg.bits, threshold=cfg.threshold,
            graph="complete" if cfg.is_complete else "sparse", k=cfg.k, adversary=cfg.threat.adversary,
            min_survivors=cfg.min_survivors, graph_seed=secrets.token_bytes(32), encoding=encoding,
            round=current_round, salt=secrets.token_bytes(16))
        ann_bytes = announcement.to_bytes()
        nonce = session_nonce(ann_bytes)
        log(INFO, "Secure aggregation commencing: %s nodes, d=%s, k=%s, t=%s, %s server%s.", n, size, cfg.k,
            cfg.threshold, cfg.threat.adversary, ", distributed DP" if self.dp else "")
        group = str(current_round)

        # -- round 1 (advertise_keys): the announcement; the session is built once the keys are known
        first = Round.ADVERTISE_KEYS.value
        start = [(u, StartSession(nonce, u).to_bytes()) for u in range(n)]
        answers, failures = self._exchange(grid, node_ids, start, group,
                                           lambda u, data: self._content(data, {K_ANNOUNCEMENT: ann_bytes}))
        directory, rejected = self._register(answers, cfg)
        failures.update(rejected)
        session = Session(cfg, graph_seed=announcement.graph_seed, nonce=nonce,
                          directory=directory if cfg.consistency_check else None)
        if session.open() != start:  # pragma: no cover - the session's first messages are StartSession(nonce, u)
            raise AssertionError("the session opened with other messages than the ones sent")
        report.costs = session.costs
        live = self._feed(session, 0, start, answers, rejected)
        self._note(report, node_ids, failures, first, {u for u, _ in start} - live)

        # -- the following rounds: the session's own messages
        fitres: dict[int, Any] = {}
        rnames = session.rounds
        for ri in range(1, len(rnames) + 1):
            try:
                outgoing = session.close(rnames[ri - 1])
            except ProtocolAbort as exc:
                return self._abort(report, session, node_ids, exc.reason)
            if ri == len(rnames):
                break
            rname = rnames[ri]

            def content(u: int, data: bytes, rname: str = rname) -> Any:
                extra: dict[str, Any] = {}
                if rname == Round.SHARE_KEYS.value and cfg.consistency_check:
                    extra[K_DIRECTORY] = pack_directory(
                        {int(v): directory[int(v)] for v in session.graph.holders(u) if int(v) in directory})
                base = compat.fitins_to_recorddict(fitins[node_ids[u]], True) \
                    if rname == Round.MASKED_INPUT.value else None
                return self._content(data, extra, base)

            log(DEBUG, "[%s] sending to %s nodes", rname, len(outgoing))
            answers, failures = self._exchange(grid, node_ids, outgoing, group, content)
            if rname == Round.MASKED_INPUT.value:
                for u, reply in answers.items():
                    try:
                        fitres[u] = compat.recorddict_to_fitres(reply.content, keep_input=True)
                    except Exception:  # noqa: BLE001 - a reply without FitRes fields still counts for the sum
                        fitres[u] = None
            live = self._feed(session, ri, outgoing, answers, {})
            self._note(report, node_ids, failures, rname, {u for u, _ in outgoing} - live)

        result = session.result()
        report.misbehaving = {node_ids[u]: why for u, why in result.misbehaving.items()}
        report.excluded = {node_ids[u]: why for u, why in result.excluded.items()}
        report.ring_sum = result.ring_sum
        survivors = list(result.survivors)
        report.survivors = [node_ids[u] for u in survivors]
        t0 = time.perf_counter()
        try:
            flat, info = encoding.decode(result.ring_sum, len(survivors), n, cfg.bits, reference=reference)
        except (SecAggError, ValueError) as exc:
            return self._abort(report, session, node_ids, f"the aggregate cannot be decoded: {exc}")
        aggregate = unflatten(flat, shapes)
        report.aggregate = aggregate
        session.costs.server_seconds[rnames[-1]] += time.perf_counter() - t0
        report.weight_total = info.get("weight_total")
        report.clients_clipped = int(info.get("clients_clipped", 0))
        metrics: dict[str, Any] = {"secagg_survivors": len(survivors)}
        if self.dp:
            assert self.accountant is not None
            self.accountant.compose(info["dp_params"].dp_event(len(survivors)))
            report.noise_std = info["noise_std"]
            report.epsilon = self.accountant.get_epsilon(self.delta)
            report.delta = self.delta
            metrics["epsilon"] = report.epsilon
            log(INFO, "distributed DP: noise multiplier %.4g, epsilon %.4g at delta %g after this round",
                self.noise_multiplier, report.epsilon, self.delta)
        if report.clients_clipped:
            log(WARNING, "%s surviving nodes clipped values to clipping_range=%g", report.clients_clipped,
                self.clipping_range)
        self._give_to_strategy(context, current_round, aggregate, dtypes, [(proxies[node_ids[u]], fitres.get(u))
                                                                          for u in survivors], report, metrics)
        log(INFO, "Secure aggregation completed: %s of %s nodes in the aggregate.", len(survivors), n)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _content(data: bytes, extra: dict[str, Any], base: Any = None) -> Any:
        from flwr.app import ConfigRecord, RecordDict

        content = base if base is not None else RecordDict()
        content.config_records[RECORD] = ConfigRecord({K_MSG: data, **extra})
        return content

    def _exchange(self, grid: Any, node_ids: list[int], envelopes: list[tuple[int, bytes]], group: str,
                  content: Any) -> tuple[dict[int, Any], dict[int, str]]:
        """Send one protocol round; the valid replies by party, and the error replies' reasons."""
        from flwr.app import Message, MessageType

        messages = [Message(content=content(u, data), dst_node_id=node_ids[u], message_type=MessageType.TRAIN,
                            group_id=group) for u, data in envelopes]
        replies = grid.send_and_receive(messages, timeout=self.timeout)
        party_of = {nid: u for u, nid in enumerate(node_ids)}
        expected = {u for u, _ in envelopes}
        answers: dict[int, Any] = {}
        failures: dict[int, str] = {}
        for reply in replies:
            u = party_of.get(int(reply.metadata.src_node_id))
            if u is None or u not in expected or u in answers or u in failures:
                continue  # not addressed in this round, or a second reply
            if reply.has_error():
                failures[u] = str(getattr(reply.error, "reason", "error reply"))[:500]
            elif reply.content.config_records.get(RECORD) is None:
                failures[u] = "its reply carries no secagg record"
            else:
                answers[u] = reply
        return answers, failures

    def _register(self, answers: dict[int, Any], cfg: MaskingConfig) -> tuple[dict[int, bytes], dict[int, str]]:
        """The key directory of the first round's answers; nodes whose key is refused leave."""
        directory: dict[int, bytes] = {}
        rejected: dict[int, str] = {}
        if not cfg.consistency_check:
            return directory, rejected
        owner: dict[bytes, int] = {}
        for u in sorted(answers):
            vk = answers[u].content.config_records[RECORD].get(K_VERIFY_KEY)
            if not isinstance(vk, bytes) or len(vk) != 32:
                rejected[u] = "no 32-byte verification key in its answer"
            elif self.trusted_keys is not None and vk not in self.trusted_keys:
                rejected[u] = "its verification key is not on the allow-list (trusted_keys)"
            elif vk in owner:
                rejected[u] = f"its verification key is already used by party {owner[vk]}"
            else:
                owner[vk] = u
                directory[u] = vk
        return directory, rejected

    @staticmethod
    def _feed(session: Session, ri: int, envelopes: list[tuple[int, bytes]], answers: dict[int, Any],
              skip: dict[int, str]) -> set[int]:
        """Count the round's traffic and hand the answers to the session; the parties it accepted."""
        rname = session.rounds[ri]
        for u, data in envelopes:
            session.delivered(u, rname, len(data))
        accepted = set()
        for u in sorted(answers):
            if u in skip:
                continue
            record = answers[u].content.config_records[RECORD]
            seconds = record.get(K_SECONDS)
            session.answered(u, ri, float(seconds) if isinstance(seconds, float) and seconds >= 0 else 0.0, None)
            datas = record.get(K_MSG)
            if not isinstance(datas, list) or len(datas) != 1 or not isinstance(datas[0], bytes):
                datas = [b""]  # recorded as a malformed message (misbehaving)
            if session.to_server(u, rname, datas[0]) is None:
                accepted.add(u)
        return accepted

    @staticmethod
    def _note(report: RoundReport, node_ids: list[int], failures: dict[int, str], rname: str,
              silent: set[int]) -> None:
        for u, why in failures.items():
            report.failures[node_ids[u]] = f"{rname}: {why}"
        for u in silent:
            report.dropped.setdefault(node_ids[u], rname)

    def _abort(self, report: RoundReport, session: Session, node_ids: list[int], reason: str) -> None:
        from flwr.common.logger import log

        report.aborted = reason
        report.misbehaving = {node_ids[u]: why for u, why in session.server.misbehaving.items()}
        log(ERROR, "Secure aggregation halted: %s", reason)

    def _check_budget(self, encoding: DPEncoding, n: int) -> None:
        if self.target_epsilon is None or self.accountant is None:
            return
        worst = self.accountant.copy().compose(encoding.params(n, self.bits).dp_event(encoding.min_clients))
        eps = worst.get_epsilon(self.delta)
        if eps > self.target_epsilon * (1 + 1e-9):
            raise BudgetExceeded(
                f"this round would bring epsilon to {eps:.4g} at delta={self.delta:g} (with the minimum "
                f"{encoding.min_clients} survivors), above target_epsilon={self.target_epsilon:g}")

    @staticmethod
    def _give_to_strategy(context: Any, current_round: int, aggregate: list[np.ndarray], dtypes: list[Any],
                          results: list[tuple[Any, Any]], report: RoundReport, metrics: dict[str, Any]) -> None:
        """Every survivor's FitRes carries the aggregate (Flower's convention), so
        ``strategy.aggregate_fit`` returns it; store the new global model."""
        import flwr.compat.common.recorddict_compat as compat
        from flwr.common import ndarrays_to_parameters
        from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

        parameters = ndarrays_to_parameters([a.astype(dt) for a, dt in zip(aggregate, dtypes)])
        legacy = []
        for proxy, res in results:
            if res is None:
                continue
            res.parameters = parameters
            legacy.append((proxy, res))
        failures = [Exception(f"node {nid}: {why}") for nid, why in report.failures.items()]
        aggregated, strategy_metrics = context.strategy.aggregate_fit(current_round, legacy, failures)
        if aggregated is not None:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(aggregated, True)
            context.history.add_metrics_distributed_fit(server_round=current_round,
                                                        metrics={**(strategy_metrics or {}), **metrics})
