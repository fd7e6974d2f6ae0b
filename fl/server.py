"""FedAvg server with a pluggable aggregator chosen by name.

Implements Federated Averaging (McMahan et al., AISTATS 2017) with the update path of
secure aggregation (Bonawitz et al., CCS 2017) and DP-FedAvg (McMahan et al., ICLR
2018). Each round:

1. **sample** clients: a fixed fraction without replacement (``sampling="fixed"``), or
   each client independently with probability ``fraction`` (``"poisson"``, which is what
   the privacy amplification of the Poisson-subsampled Gaussian in the accountant
   assumes);
2. **train locally** (:meth:`fl.client.Client.local_update`), clip each delta to L2 norm
   ``clip_norm`` and scale it by the client's public weight ``w_i = n_i / max_j n_j`` (or 1
   with ``weighting="uniform"``), so every contribution has norm <= ``clip_norm``;
3. **drop** clients: a ``dropout`` fraction chosen at random, at protocol round
   ``dropout_round`` (the masking protocols recover from it), plus, with a ``deadline``,
   every client whose simulated time (:mod:`fl.devices`) would miss it;
4. **aggregate** through ``secagg.make_aggregator(name, ...)`` with ``clip_norm`` for the
   DP techniques and ``bound=clip_norm`` for the others (a norm bounds every coordinate,
   so nothing is out of range): the server
   receives only the (possibly noisy) sum of the surviving rows and who survived, and
   divides by the survivors' total weight, which is public (the server knows who took
   part). If the protocol aborts (too few survivors) the round is recorded and the
   model is left unchanged;
5. **account**: for DP aggregators the RDP accountant of :mod:`secagg.dp` composes one
   Gaussian event (Poisson-subsampled when sampling is Poisson) per round, with the
   noise multiplier the aggregator actually achieved; a ``target_epsilon`` is checked
   *before* training (:class:`~secagg.errors.BudgetExceeded`) and before every round.

Every round records test accuracy and loss, bytes up/down per client (the aggregator's
message encodings plus the float32 model broadcast), measured training vs cryptography
seconds, simulated wall-clock on heterogeneous devices, and epsilon.

Configuration errors (unknown aggregator or dataset, threshold above the clients per
round, a budget the planned rounds would exceed) are raised before any training.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from secagg import make_aggregator
from secagg.aggregators import AggregationResult, Aggregator, aggregator_class
from secagg.errors import BudgetExceeded, ConfigurationError, ProtocolAbort

from .client import Client, clip_and_weight
from .data import Dataset, partition, partition_summary
from .devices import DeviceFleet, device_times, fedavg_round_time
from .model import init_params, loss_and_grad, n_params, predict_proba

__all__ = [
    "DP_AGGREGATORS",
    "clip_options",
    "FedAvg",
    "FedAvgConfig",
    "FedAvgResult",
    "RoundRecord",
    "make_clients",
    "run_fedavg",
]

#: aggregators whose sums carry DP noise (epsilon is accounted for them)
DP_AGGREGATORS = frozenset({"central-dp", "local-dp", "distributed-dp"})

#: network round trips of each technique's protocol per FedAvg round (model download
#: included); masking: advertise keys, share keys, masked input, unmasking
PROTOCOL_ROUND_TRIPS = {"plain": 1, "central-dp": 1, "local-dp": 1, "paillier": 1,
                        "secagg": 4, "secagg+": 4, "distributed-dp": 4}

_MODEL_BYTES_PER_PARAM = 4  # the global model is broadcast as float32


@dataclass(frozen=True)
class FedAvgConfig:
    """Everything that defines a FedAvg run (all public, none secret).

    rounds: FedAvg rounds. fraction: share of clients sampled per round, in (0, 1].
    sampling: ``"fixed"`` or ``"poisson"``. local_epochs, batch_size, lr, l2: local SGD.
    server_lr: step applied to the averaged delta. clip_norm: L2 norm each contribution is
    clipped to (``clip=`` is its deprecated old name).
    weighting: ``"examples"`` (w_i = n_i / max n) or ``"uniform"``.
    aggregator: a name for :func:`secagg.make_aggregator`; aggregator_options: extra
    constructor keywords (``clip_norm`` for DP, ``bound`` otherwise, and, for DP,
    ``noise_multiplier`` are filled in).
    dropout: fraction of sampled clients dropping each round, in [0, 1).
    dropout_round: protocol round at which they drop (``"masked_input"`` etc.).
    deadline: simulated seconds after which the server closes a round (None: wait for all).
    noise_multiplier: DP noise std / clip_norm (None with a DP aggregator: solved from
    ``target_epsilon``). delta: DP delta. target_epsilon: budget (None: no budget).
    """

    rounds: int = 20
    fraction: float = 1.0
    sampling: str = "fixed"
    local_epochs: int = 1
    batch_size: int = 16
    lr: float = 0.1
    server_lr: float = 1.0
    l2: float = 1e-3
    clip_norm: float = 1.0
    weighting: str = "examples"
    aggregator: str = "plain"
    aggregator_options: Mapping[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    dropout_round: str = "masked_input"
    deadline: float | None = None
    noise_multiplier: float | None = None
    delta: float = 1e-5
    target_epsilon: float | None = None

    def validate(self) -> None:
        """Raise ConfigurationError naming the first impossible setting."""
        if not isinstance(self.rounds, (int, np.integer)) or self.rounds < 1:
            raise ConfigurationError(f"rounds must be a positive integer, got {self.rounds!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigurationError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if self.sampling not in ("fixed", "poisson"):
            raise ConfigurationError(f"sampling must be 'fixed' or 'poisson', got {self.sampling!r}")
        if self.weighting not in ("examples", "uniform"):
            raise ConfigurationError(f"weighting must be 'examples' or 'uniform', got {self.weighting!r}")
        if self.local_epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not self.server_lr > 0:
            raise ConfigurationError("local_epochs and batch_size must be >= 1, lr and server_lr > 0")
        if not (np.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ConfigurationError(f"clip_norm must be a positive finite L2 norm, got {self.clip_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(f"dropout must be a rate in [0, 1), got {self.dropout!r}")
        from secagg.masking.rounds import ROUNDS

        if self.dropout_round not in ROUNDS:
            raise ConfigurationError(f"dropout_round must be one of {', '.join(ROUNDS)}, got {self.dropout_round!r}")
        if self.deadline is not None and not self.deadline > 0:
            raise ConfigurationError(f"deadline must be positive seconds or None, got {self.deadline!r}")
        if not 0.0 < self.delta < 1.0:
            raise ConfigurationError(f"delta must be in (0, 1), got {self.delta!r}")
        if self.noise_multiplier is not None and not self.noise_multiplier > 0:
            raise ConfigurationError(f"noise_multiplier must be positive, got {self.noise_multiplier!r}")
        if self.target_epsilon is not None and not self.target_epsilon > 0:
            raise ConfigurationError(f"target_epsilon must be positive, got {self.target_epsilon!r}")
        if not self.is_dp and (self.noise_multiplier is not None or self.target_epsilon is not None):
            raise ConfigurationError(
                f"noise_multiplier and target_epsilon apply to the DP aggregators "
                f"({', '.join(sorted(DP_AGGREGATORS))}); {self.aggregator!r} adds no noise, "
                "so it would train without DP")
        if self.aggregator in DP_AGGREGATORS and self.noise_multiplier is None and self.target_epsilon is None:
            raise ConfigurationError(
                f"aggregator {self.aggregator!r} adds DP noise: give noise_multiplier or target_epsilon")

    @property
    def is_dp(self) -> bool:
        """Whether this run's aggregator adds DP noise (epsilon is accounted)."""
        return self.aggregator in DP_AGGREGATORS


def clip_options(aggregator: str, clip_norm: float) -> dict[str, float]:
    """The constructor option that carries an L2 ``clip_norm`` to ``aggregator``.

    DP techniques take it as ``clip_norm``; the others as their per-coordinate ``bound``
    (a row of L2 norm ``<= clip_norm`` has every coordinate within it, so none is out of
    range). Classes that still call it ``clip`` get ``clip``.
    """
    params = inspect.signature(aggregator_class(aggregator)).parameters
    key = next((k for k in ("clip_norm", "bound", "clip") if k in params), None)
    return {} if key is None else {key: clip_norm}


def _accept_old_clip(init):
    """``FedAvgConfig(clip=...)``: the old name of ``clip_norm`` (always an L2 norm here), with a warning."""

    @functools.wraps(init)
    def __init__(self, *args, clip: float | None = None, **kwargs) -> None:
        if clip is not None:
            if "clip_norm" in kwargs:
                raise ConfigurationError("give clip_norm= only (clip= is its deprecated old name)")
            warnings.warn("FedAvgConfig(clip=...) is deprecated: use clip_norm= (an L2 norm)", DeprecationWarning,
                          stacklevel=2)
            kwargs["clip_norm"] = clip
        init(self, *args, **kwargs)

    return __init__


def _deprecated_clip(self: FedAvgConfig) -> float:
    """Deprecated alias of ``clip_norm``."""
    warnings.warn("FedAvgConfig.clip is deprecated: read clip_norm", DeprecationWarning, stacklevel=2)
    return self.clip_norm


FedAvgConfig.__init__ = _accept_old_clip(FedAvgConfig.__init__)  # type: ignore[method-assign]
FedAvgConfig.clip = property(_deprecated_clip)  # type: ignore[attr-defined]


@dataclass
class RoundRecord:
    """The measurements of one FedAvg round (JSON-ready via :func:`dataclasses.asdict`).

    Bytes are per round; ``bytes_up_per_client`` / ``bytes_down_per_client`` are means
    over the sampled clients; ``*_seconds`` are measured on this machine except
    ``simulated_seconds`` (device model). ``epsilon`` is cumulative (None without DP).
    """

    round: int
    sampled: int
    survivors: int
    dropped: int
    late: int
    aborted: bool
    test_accuracy: float
    test_loss: float
    train_loss: float
    bytes_up: int
    bytes_down: int
    bytes_up_per_client: float
    bytes_down_per_client: float
    train_seconds: float
    crypto_client_seconds: float
    crypto_server_seconds: float
    simulated_seconds: float
    noise_std: float
    epsilon: float | None
    clipped_fraction: float
    abort_reason: str = ""


@dataclass
class FedAvgResult:
    """A finished run: final parameters, per-round records and run-level facts."""

    dataset: str
    aggregator: str
    config: FedAvgConfig
    params: np.ndarray
    n_classes: int
    n_features: int
    history: list[RoundRecord]
    partition: dict
    devices: dict
    hides_individual_updates: bool
    noise_multiplier: float | None
    wall_seconds: float
    stop_reason: str = ""

    @property
    def accuracy(self) -> float:
        """Test accuracy after the last round, in [0, 1]."""
        return self.history[-1].test_accuracy if self.history else float("nan")

    @property
    def epsilon(self) -> float | None:
        """Cumulative epsilon after the last round (None without DP)."""
        return self.history[-1].epsilon if self.history else None

    @property
    def bytes_total(self) -> int:
        """All bytes moved (up + down, every round)."""
        return int(sum(r.bytes_up + r.bytes_down for r in self.history))

    @property
    def simulated_seconds(self) -> float:
        """Simulated wall-clock of the whole run on the device fleet."""
        return float(sum(r.simulated_seconds for r in self.history))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of the final model, ``(n, n_classes)``."""
        return predict_proba(self.params, X, self.n_classes)

    def to_dict(self) -> dict:
        """JSON-ready dictionary of everything except the raw parameters."""
        cfg = dataclasses.asdict(self.config)
        cfg["aggregator_options"] = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                                     for k, v in dict(self.config.aggregator_options).items()}
        return {
            "dataset": self.dataset, "aggregator": self.aggregator, "config": cfg,
            "accuracy": self.accuracy, "epsilon": self.epsilon, "bytes_total": self.bytes_total,
            "simulated_seconds": self.simulated_seconds, "wall_seconds": self.wall_seconds,
            "hides_individual_updates": self.hides_individual_updates,
            "noise_multiplier": self.noise_multiplier, "partition": self.partition, "devices": self.devices,
            "stop_reason": self.stop_reason,
            "rounds": [dataclasses.asdict(r) for r in self.history],
        }


def make_clients(dataset: Dataset, num_clients: int, scheme: str = "iid", *, alpha: float = 0.5,
                 rng: np.random.Generator | None = None) -> tuple[list[Client], dict]:
    """Partition ``dataset``'s training rows into clients; returns ``(clients, summary dict)``."""
    parts = partition(dataset.y_train, num_clients, scheme, alpha=alpha, rng=rng)
    clients = [Client(i, dataset.X_train[p], dataset.y_train[p], dataset.n_classes) for i, p in enumerate(parts)]
    summary = partition_summary(parts, dataset.y_train, dataset.n_classes, scheme).to_dict()
    return clients, summary


def _dp():
    """The secagg.dp module, or ConfigurationError if that part is not installed."""
    try:
        from secagg import dp
        return dp
    except ImportError as exc:
        raise ConfigurationError(f"DP accounting is not available (secagg.dp): {exc}") from None


class FedAvg:
    """A FedAvg run over ``clients`` evaluated on ``(X_test, y_test)``.

    Construction validates everything and builds the aggregator, so a bad configuration
    fails here, before any training. :meth:`run` trains and returns a :class:`FedAvgResult`.

    Parameters
    ----------
    clients: the federated clients (all with the same feature count and ``n_classes``).
    X_test, y_test: held-out evaluation data.
    config: a :class:`FedAvgConfig`.
    devices: the device fleet (one device per client); default: :meth:`DeviceFleet.sample`.
    seed: int seed for every statistical choice (sampling, dropouts, SGD shuffling,
        rounding and DP noise), for reproducible simulations; None draws them from the
        OS, and the aggregator's rounding and DP noise from its AES-CTR generator keyed
        from ``secrets``. Cryptographic secrets never come from it.
    aggregator: an already built :class:`secagg.aggregators.Aggregator` to use instead
        of building ``config.aggregator`` (e.g. to share a Paillier key across runs).

    Raises
    ------
    ConfigurationError: unknown aggregator, threshold above the clients per round,
        impossible dropout, missing DP parameters. BudgetExceeded: the planned rounds
        would exceed ``target_epsilon``.
    """

    def __init__(self, clients: list[Client], X_test: np.ndarray, y_test: np.ndarray,
                 config: FedAvgConfig = FedAvgConfig(), *, devices: DeviceFleet | None = None,
                 seed: int | None = None, aggregator: Aggregator | None = None,
                 dataset_name: str = "", partition_info: dict | None = None) -> None:
        config.validate()
        if not clients:
            raise ConfigurationError("FedAvg needs at least one client")
        self.clients = clients
        self.X_test = np.asarray(X_test, dtype=np.float64)
        self.y_test = np.asarray(y_test).astype(np.int64)
        self.config = config
        self.n_classes = clients[0].n_classes
        self.n_features = clients[0].X.shape[1]
        self.dim = n_params(self.n_features, self.n_classes)
        self.dataset_name = dataset_name
        self.partition_info = partition_info or {}
        ss = np.random.SeedSequence(seed)
        s_sample, s_train, s_drop, s_agg, s_dev = ss.spawn(5)
        self._rng_sample = np.random.default_rng(s_sample)
        self._rng_train = np.random.default_rng(s_train)
        self._rng_drop = np.random.default_rng(s_drop)
        # The aggregator's randomness (stochastic rounding, DP noise) follows ``seed`` only
        # when one is given, for reproducible simulations; without a seed the aggregators
        # draw it from their default AES-CTR generator keyed from ``secrets``.
        self._rng_agg = np.random.default_rng(s_agg) if seed is not None else None
        self.devices = devices if devices is not None else DeviceFleet.sample(len(clients), np.random.default_rng(s_dev))
        if len(self.devices) != len(clients):
            raise ConfigurationError(f"{len(clients)} clients need {len(clients)} devices, got {len(self.devices)}")
        sizes = np.array([c.n_examples for c in clients], dtype=np.float64)
        self.weights = sizes / sizes.max() if config.weighting == "examples" else np.ones(len(clients))
        n = len(clients)
        self.expected_per_round = max(1, int(round(config.fraction * n)))
        self._check_threshold(n)
        self.noise_multiplier = self._resolve_noise()
        self._accountant = None
        self._budget = None
        self._last_event = None
        if config.is_dp:
            dp = _dp()
            if config.target_epsilon is not None:
                self._budget = dp.PrivacyBudget(config.target_epsilon, config.delta)
                self._accountant = self._budget.accountant
            else:
                self._accountant = dp.RdpAccountant()
        given = aggregator
        solve = config.is_dp and config.noise_multiplier is None and given is None
        for _ in range(40):
            self.aggregator = given if given is not None else self._build_aggregator()
            if given is not None and config.is_dp:
                self.noise_multiplier = float(getattr(given, "noise_multiplier", self.noise_multiplier))
            self._probe()
            if self._budget is None:
                break
            try:
                self._check_budget(config.rounds)
                break
            except BudgetExceeded:
                if not solve:
                    raise
                # the technique's own event (e.g. discrete noise, fewer survivors) costs a bit
                # more than the Gaussian the multiplier was solved for: add 5 % noise and retry
                self.noise_multiplier *= 1.05
        else:  # pragma: no cover - 40 steps of 5 % is 7x the solved noise
            self._check_budget(config.rounds)

    def _build_aggregator(self) -> Aggregator:
        cfg = self.config
        options: dict[str, Any] = clip_options(cfg.aggregator, cfg.clip_norm)
        if cfg.is_dp:
            options["noise_multiplier"] = self.noise_multiplier
        if cfg.aggregator == "distributed-dp" and cfg.dropout:
            # calibrate each client's noise share for the clients expected to survive
            options["expected_dropout"] = cfg.dropout
        options.update(dict(cfg.aggregator_options))
        return make_aggregator(cfg.aggregator, **options)

    # ------------------------------------------------------------------ validation
    def _check_threshold(self, n: int) -> None:
        cfg = self.config
        t = dict(cfg.aggregator_options).get("threshold")
        m = self.expected_per_round
        if t is None:
            return
        if t > m:
            raise ConfigurationError(
                f"threshold {t} is above the {m} clients sampled per round ({n} clients x fraction "
                f"{cfg.fraction}); use a threshold <= {m} or sample more clients")
        survivors = m - int(round(cfg.dropout * m))
        if survivors < t:
            raise ConfigurationError(
                f"with dropout {cfg.dropout} only {survivors} of {m} clients survive a round, below the "
                f"threshold {t}: every round would abort; lower the dropout or the threshold")

    def _sampling_rate(self) -> float:
        return self.config.fraction

    def _event(self, z: float, base=None):
        """The privacy event of one round: Gaussian with multiplier ``z`` (or the event
        the aggregator reported), Poisson-subsampled when sampling is Poisson and the
        accountant can bound it. Fixed-size sampling claims no amplification (conservative)."""
        dp = _dp()
        ev = base if base is not None else dp.GaussianEvent(z)
        if self.config.sampling == "poisson" and self.config.fraction < 1.0:
            sampled = dp.PoissonSampledEvent(self.config.fraction, ev)
            try:
                dp.RdpAccountant().compose(sampled)
            except ConfigurationError:
                # the accountant has no subsampled bound for this event (e.g. the distributed
                # discrete Gaussian): charge it without amplification, an upper bound
                return ev
            return sampled
        return ev

    def _resolve_noise(self) -> float | None:
        cfg = self.config
        if not cfg.is_dp:
            return None
        if cfg.noise_multiplier is not None:
            return float(cfg.noise_multiplier)
        q = cfg.fraction if cfg.sampling == "poisson" else 1.0
        return float(_dp().noise_multiplier_for(cfg.target_epsilon, cfg.delta, q, cfg.rounds))

    def _check_budget(self, rounds: int) -> None:
        cfg = self.config
        eps = float(self._budget.epsilon_after(self._planned_event, rounds))
        if eps > cfg.target_epsilon:
            raise BudgetExceeded(
                f"{rounds} rounds at noise multiplier {self.noise_multiplier:.4g} spend epsilon {eps:.4g} "
                f"(delta {cfg.delta:g}), above the budget {cfg.target_epsilon:g}; raise the noise "
                f"multiplier, sample fewer clients (Poisson) or train fewer rounds")

    def _probe(self) -> None:
        """One aggregation of zeros at full size: fails fast on configurations the
        aggregator rejects, and measures its bytes per client for deadline planning."""
        m = self.expected_per_round
        k = int(round(self.config.dropout * m))
        drop = {int(i): self.config.dropout_round for i in range(m - k, m)} if k else None
        res = self.aggregator.aggregate(np.zeros((m, self.dim)), dropout=drop, rng=np.random.default_rng(0))
        live = res.survivors if res.survivors.size else np.arange(m)
        self._est_bytes_up = float(np.mean(res.bytes_up[live]))
        self._est_bytes_down = float(np.mean(res.bytes_down[live])) + _MODEL_BYTES_PER_PARAM * self.dim
        self._est_crypto = float(np.mean(res.client_seconds[live]))
        # the privacy event of a planned round (with the planned dropouts), for the budget
        self._planned_event = self._event(self.noise_multiplier, res.info.get("dp_event")) if self.config.is_dp \
            else None

    # ------------------------------------------------------------------ training
    def _sample(self) -> np.ndarray:
        n, cfg = len(self.clients), self.config
        if cfg.fraction >= 1.0:
            return np.arange(n)
        if cfg.sampling == "poisson":
            return np.flatnonzero(self._rng_sample.random(n) < cfg.fraction)
        return np.sort(self._rng_sample.choice(n, size=self.expected_per_round, replace=False))

    def evaluate(self, params: np.ndarray) -> tuple[float, float]:
        """Test ``(accuracy, loss)`` of ``params``."""
        loss, _ = loss_and_grad(params, self.X_test, self.y_test, self.n_classes, 0.0)
        acc = float(np.mean(np.argmax(predict_proba(params, self.X_test, self.n_classes), axis=1) == self.y_test))
        return acc, float(loss)

    def run(self, *, progress: bool = False, desc: str | None = None) -> FedAvgResult:
        """Train for ``config.rounds`` rounds; returns the :class:`FedAvgResult`."""
        cfg = self.config
        t_start = time.perf_counter()
        params = init_params(self.n_features, self.n_classes)
        history: list[RoundRecord] = []
        rounds = range(1, cfg.rounds + 1)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(rounds, desc=desc or cfg.aggregator, leave=False, unit="round")
            rounds = bar
        rtt = PROTOCOL_ROUND_TRIPS.get(cfg.aggregator, 4)
        stop_reason = ""
        for r in rounds:
            if self._budget is not None:
                try:
                    self._check_round_budget()
                except BudgetExceeded as exc:  # dropouts left less noise than planned: stop, keep results
                    stop_reason = str(exc)
                    break
            chosen = self._sample()
            m = len(chosen)
            if m == 0:  # Poisson sampling picked nobody: nothing to do this round
                acc, loss = self.evaluate(params)
                history.append(self._empty_record(r, acc, loss))
                continue
            updates, train_s, flops, train_losses = [], 0.0, np.zeros(m), np.zeros(m)
            for j, i in enumerate(chosen):
                u = self.clients[i].local_update(params, epochs=cfg.local_epochs, batch_size=cfg.batch_size,
                                                 lr=cfg.lr, l2=cfg.l2, rng=self._rng_train)
                updates.append(u.delta)
                train_s += u.seconds
                flops[j] = u.flops
                train_losses[j] = u.train_loss
            w = self.weights[chosen]
            rows, clipped = clip_and_weight(np.stack(updates), w, cfg.clip_norm)

            # dropouts: random ones at dropout_round, plus stragglers past the deadline
            drop = {}
            k = int(round(cfg.dropout * m))
            if k:
                for row in self._rng_drop.choice(m, size=k, replace=False):
                    drop[int(row)] = cfg.dropout_round
            fleet = self.devices.subset(chosen)
            predicted = device_times(fleet, flops=flops, bytes_up=self._est_bytes_up,
                                     bytes_down=self._est_bytes_down, crypto_seconds=self._est_crypto,
                                     round_trips=rtt)
            late = np.zeros(m, dtype=bool)
            if cfg.deadline is not None:
                _, late = fedavg_round_time(predicted, cfg.deadline)
                for row in np.flatnonzero(late):
                    drop.setdefault(int(row), "masked_input")

            try:
                res: AggregationResult = self.aggregator.aggregate(rows, dropout=drop or None, rng=self._rng_agg)
                aborted, reason = False, ""
            except ProtocolAbort as exc:
                res, aborted, reason = None, True, exc.reason
            model_down = _MODEL_BYTES_PER_PARAM * self.dim
            if res is not None:
                surv = res.survivors
                total_w = float(w[surv].sum())
                if surv.size and total_w > 0:
                    params = params + cfg.server_lr * res.total / total_w
                up = res.bytes_up.astype(np.int64)
                down = res.bytes_down.astype(np.int64) + model_down
                csec = res.client_seconds
                ssec = float(res.server_seconds)
                noise_std = float(res.noise_std)
                self._est_bytes_up = float(up.mean())
                self._est_bytes_down = float(down.mean())
                self._est_crypto = float(csec.mean())
            else:
                surv = np.zeros(0, dtype=np.int64)
                up = np.full(m, int(self._est_bytes_up))
                down = np.full(m, model_down)
                csec, ssec, noise_std = np.zeros(m), 0.0, 0.0
            actual = device_times(fleet, flops=flops, bytes_up=up, bytes_down=down, crypto_seconds=csec,
                                  round_trips=rtt)
            # the server waits for those who finished (or until the deadline if some were late)
            done = np.zeros(m, dtype=bool)
            done[surv] = True
            wait = float(actual[done].max()) if done.any() else float(actual.max())
            if cfg.deadline is not None and late.any():
                wait = float(cfg.deadline)
            sim = wait + ssec

            eps = None
            if self._accountant is not None:
                if res is not None:
                    # the privacy actually spent: the aggregator's achieved noise (fewer survivors
                    # under distributed DP means less noise) or its own event if it reports one
                    z = float(res.info.get("noise_multiplier", self.noise_multiplier))
                    self._last_event = self._event(z, res.info.get("dp_event"))
                    self._accountant.compose(self._last_event, 1)
                    if self._budget is not None:
                        self._budget.rounds += 1
                eps = float(self._accountant.get_epsilon(cfg.delta))
            acc, loss = self.evaluate(params)
            history.append(RoundRecord(
                round=r, sampled=m, survivors=int(surv.size), dropped=len(drop), late=int(late.sum()),
                aborted=aborted, test_accuracy=acc, test_loss=loss, train_loss=float(train_losses.mean()),
                bytes_up=int(up.sum()), bytes_down=int(down.sum()),
                bytes_up_per_client=float(up.mean()), bytes_down_per_client=float(down.mean()),
                train_seconds=train_s, crypto_client_seconds=float(np.sum(csec)), crypto_server_seconds=ssec,
                simulated_seconds=sim, noise_std=noise_std, epsilon=eps,
                clipped_fraction=float(clipped.mean()), abort_reason=reason))
            if bar is not None:
                bar.set_postfix(acc=f"{acc:.3f}", eps="-" if eps is None else f"{eps:.2f}")
        if bar is not None:
            bar.close()
        return FedAvgResult(
            dataset=self.dataset_name, aggregator=cfg.aggregator, config=cfg, params=params,
            n_classes=self.n_classes, n_features=self.n_features, history=history, partition=self.partition_info,
            devices=self.devices.to_dict(),
            hides_individual_updates=bool(getattr(self.aggregator, "hides_individual_updates", False)),
            noise_multiplier=self.noise_multiplier, wall_seconds=time.perf_counter() - t_start,
            stop_reason=stop_reason)

    def _check_round_budget(self) -> None:
        """Refuse a round that would push epsilon over the target (BudgetExceeded)."""
        ev = self._last_event if self._last_event is not None else self._planned_event
        if not self._budget.can_afford(ev):
            raise BudgetExceeded(
                f"the next round would bring epsilon to {self._budget.epsilon_after(ev):.4g} (delta "
                f"{self.config.delta:g}), above the budget {self.config.target_epsilon:g}; the run stops "
                "before spending it")

    def _empty_record(self, r: int, acc: float, loss: float) -> RoundRecord:
        eps = None
        if self._accountant is not None:  # a sampled-but-empty Poisson round still spends privacy
            self._accountant.compose(self._planned_event, 1)
            eps = float(self._accountant.get_epsilon(self.config.delta))
        return RoundRecord(round=r, sampled=0, survivors=0, dropped=0, late=0, aborted=False, test_accuracy=acc,
                           test_loss=loss, train_loss=float("nan"), bytes_up=0, bytes_down=0,
                           bytes_up_per_client=0.0, bytes_down_per_client=0.0, train_seconds=0.0,
                           crypto_client_seconds=0.0, crypto_server_seconds=0.0, simulated_seconds=0.0,
                           noise_std=0.0, epsilon=eps, clipped_fraction=0.0)


def run_fedavg(dataset: Dataset, config: FedAvgConfig = FedAvgConfig(), *, num_clients: int = 10,
               partition_scheme: str = "iid", alpha: float = 0.5, seed: int | None = None,
               devices: DeviceFleet | None = None, aggregator: Aggregator | None = None,
               progress: bool = False, desc: str | None = None) -> FedAvgResult:
    """Partition ``dataset`` over ``num_clients`` clients and run FedAvg (see :class:`FedAvg`).

    The same ``seed`` gives the same partition, device fleet, client sampling, dropouts
    and SGD shuffling for every aggregator, so runs differ only by the aggregation.
    """
    config.validate()
    ss = np.random.SeedSequence(seed)
    s_part, s_run = ss.spawn(2)
    clients, summary = make_clients(dataset, num_clients, partition_scheme, alpha=alpha,
                                    rng=np.random.default_rng(s_part))
    run_seed = int(s_run.generate_state(1, dtype=np.uint64)[0]) if seed is not None else None
    fed = FedAvg(clients, dataset.X_test, dataset.y_test, config, devices=devices, seed=run_seed,
                 aggregator=aggregator, dataset_name=dataset.name, partition_info=summary)
    return fed.run(progress=progress, desc=desc)
