"""FedAvg server with a pluggable aggregator chosen by name.

Implements Federated Averaging (McMahan et al., AISTATS 2017) with the update path of
secure aggregation (Bonawitz et al., CCS 2017) and DP-FedAvg (McMahan et al., ICLR
2018). Each round:

1. **sample** clients: a fixed fraction without replacement (``sampling="fixed"``), or
   each client independently with probability ``fraction`` (``"poisson"``);
2. **train locally** (:meth:`fl.client.Client.local_update`), clip each delta to L2 norm
   ``clip_norm`` and scale it by the client's public weight (``w_i = min(n_i / W, 1)`` with
   ``W = weight_cap``, by default the largest client without DP; under DP ``W`` must be
   given, or weights are uniform), so every contribution has norm <= ``clip_norm``. With
   ``dp_unit="example"`` clients run DP-SGD instead (:mod:`fl.example_dp`);
3. **drop** clients: a ``dropout`` fraction chosen at random, at protocol round
   ``dropout_round`` (the masking protocols recover from it), plus, with a ``deadline``,
   every client whose simulated time (:mod:`fl.devices`) would miss it;
4. **aggregate** through ``secagg.make_aggregator(name, ...)`` with ``clip_norm`` for the
   DP techniques and ``bound=clip_norm`` for the others (a norm bounds every coordinate,
   so nothing is out of range): the server receives only the (possibly noisy) sum of
   the surviving rows and who survived. It divides by the survivors' total weight
   without DP, and by a fixed public constant under client-level DP (the expected number
   of contributions per round, McMahan et al. 2018), so no data-dependent number is
   released without noise. If the protocol aborts (too few survivors) the round is
   recorded and the model is left unchanged;
5. **account**: for DP aggregators the round's *actual* event (the aggregator's own,
   with the actual survivors) is charged to a :class:`fl.privacy.PrivacyLedger` once
   the survivor set is fixed and before the aggregate is used; if it does not fit
   ``target_epsilon`` the round is refused (aggregate discarded, model unchanged,
   recorded) and the run stops. Client sampling is charged as an amplification only
   under central DP (a trusted server keeps the sample secret); local and distributed
   DP are charged without it, since the server picks the sample and sees the messages.
   The noise multiplier for a ``target_epsilon`` is solved once from the technique's own
   planned event (:func:`fl.privacy.calibrate_noise_multiplier`).

Every round records test accuracy and loss, bytes up/down per client (the aggregator's
message encodings plus the float32 model broadcast), measured training vs cryptography
seconds, simulated wall-clock on heterogeneous devices, and epsilon.

Configuration errors (unknown aggregator or dataset, threshold above the clients per
round, a budget the planned rounds would exceed) are raised before any training.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from secagg._deprecation import accept_old_clip
from secagg import make_aggregator
from secagg.aggregators import AggregationResult, Aggregator, Costs, aggregator_class
from secagg.errors import BudgetExceeded, ConfigurationError, ProtocolAbort

from secagg.quantize import secure_generator

from .client import FLOPS_PER_EXAMPLE_PARAM, Client, clip_and_weight
from .data import Dataset, partition, partition_summary
from .devices import DeviceFleet, device_times, fedavg_round_time
from .example_dp import (EXAMPLE_PLACEMENTS, central_round, clipped_gradient_sum, distributed_params, example_event,
                         local_dp_sgd)
from .model import init_params, loss_and_grad, n_params, predict_proba
from .privacy import NEIGHBOURING, PrivacyLedger, accountant_name, calibrate_noise_multiplier

__all__ = [
    "FedAvg",
    "FedAvgConfig",
    "FedAvgResult",
    "RoundRecord",
    "make_clients",
    "run_fedavg",
    "dp_aggregators",
]

def dp_aggregators() -> frozenset[str]:
    """Registered aggregators that add DP noise (their ``is_dp`` says so, custom ones too)."""
    from secagg.aggregators import available_aggregators

    return frozenset(n for n in available_aggregators() if _declares(n, "is_dp"))


def _declares(name: str, attribute: str) -> bool:
    """What the aggregator class registered as ``name`` declares (False if it cannot load)."""
    return bool(_declared(name, attribute))


def _declared(name: str, attribute: str) -> Any:
    """A class attribute of the aggregator registered as ``name`` (None if it cannot load)."""
    try:
        return getattr(aggregator_class(name), attribute, None)
    except ConfigurationError:
        return None

_MODEL_BYTES_PER_PARAM = 4  # the global model is broadcast as float32


@accept_old_clip
@dataclass(frozen=True)
class FedAvgConfig:
    """Everything that defines a FedAvg run (all public, none secret).

    Attributes
    ----------
    rounds: FedAvg rounds. fraction: share of clients sampled per round, in (0, 1].
    sampling: ``"fixed"`` or ``"poisson"``. local_epochs, batch_size, lr, l2: local SGD
        (with ``dp_unit="example"``: local DP-SGD epochs, see below).
    server_lr: step applied to the averaged delta.
    clip_norm: L2 norm each client's contribution is clipped to (``dp_unit="client"``) or
        each example's gradient (``dp_unit="example"``); ``clip=`` is its deprecated old name.
    weighting: ``"examples"`` (w_i = n_i / W) or ``"uniform"``; None (default) means
        ``"examples"`` without DP and ``"uniform"`` with DP.
    weight_cap: the public ``W`` of ``w_i = min(n_i / W, 1)`` (McMahan et al., ICLR 2018).
        Without DP it defaults to the largest client; under DP, ``weighting="examples"``
        requires it (a denominator computed from the clients' data would leak).
    aggregator: a name for :func:`secagg.make_aggregator`; aggregator_options: extra
        constructor keywords (``clip_norm`` for DP, ``bound`` otherwise, and, for DP,
        ``noise_multiplier`` are filled in).
    dropout: fraction of sampled clients dropping each round, in [0, 1).
    dropout_round: protocol round at which they drop (``"masked_input"`` etc.).
    deadline: simulated seconds after which the server closes a round (None: wait for all).
    noise_multiplier: DP noise std / sensitivity (None with a DP aggregator: solved from
        ``target_epsilon``). delta: DP delta. target_epsilon: budget (None: no budget).
    dp_unit: the privacy unit of a DP aggregator: ``"client"`` (all of a client's data,
        the default) or ``"example"`` (one training row: DP-SGD clients, see
        :mod:`fl.example_dp`). Only for DP aggregators.
    example_sampling_rate: with ``dp_unit="example"``, the Poisson rate at which each
        client samples its own rows for a DP-SGD step (default 1: full batch).
    reproducible_noise: draw DP noise, stochastic rounding and the privacy-relevant
        sampling from ``seed`` instead of the CSPRNG. For research only: anyone who
        knows the seed can subtract the noise. Recorded in the results.
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
    weighting: str | None = None
    weight_cap: float | None = None
    aggregator: str = "plain"
    aggregator_options: Mapping[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    dropout_round: str = "masked_input"
    deadline: float | None = None
    noise_multiplier: float | None = None
    delta: float = 1e-5
    target_epsilon: float | None = None
    dp_unit: str | None = None
    example_sampling_rate: float | None = None
    reproducible_noise: bool = False

    def validate(self) -> None:
        """Raise ConfigurationError naming the first impossible (or inapplicable) setting."""
        if not isinstance(self.rounds, (int, np.integer)) or self.rounds < 1:
            raise ConfigurationError(f"rounds must be a positive integer, got {self.rounds!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigurationError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if self.sampling not in ("fixed", "poisson"):
            raise ConfigurationError(f"sampling must be 'fixed' or 'poisson', got {self.sampling!r}")
        if self.weighting not in (None, "examples", "uniform"):
            raise ConfigurationError(f"weighting must be 'examples' or 'uniform', got {self.weighting!r}")
        if self.weight_cap is not None and not (np.isfinite(self.weight_cap) and self.weight_cap > 0):
            raise ConfigurationError(f"weight_cap must be a positive number of examples, got {self.weight_cap!r}")
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
        if not self.is_dp:
            for name in ("noise_multiplier", "target_epsilon", "dp_unit", "example_sampling_rate"):
                if getattr(self, name) is not None:
                    raise ConfigurationError(
                        f"{name} applies only to DP aggregators ({', '.join(sorted(dp_aggregators()))}), "
                        f"not {self.aggregator!r}: it adds no noise, so it would train without DP")
            if self.reproducible_noise and not _declares(self.aggregator, "randomized"):
                raise ConfigurationError(
                    f"reproducible_noise applies only to aggregators with random noise or rounding, not "
                    f"{self.aggregator!r}")
            return
        if self.dp_unit not in (None, "client", "example"):
            raise ConfigurationError(f"dp_unit must be 'client' or 'example', got {self.dp_unit!r}")
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise ConfigurationError(
                f"aggregator {self.aggregator!r} adds DP noise: give noise_multiplier or target_epsilon")
        if self.weighting == "examples" and self.weight_cap is None and self.unit == "client":
            raise ConfigurationError(
                "under DP, weighting='examples' needs a public weight_cap W (w_i = min(n_i / W, 1)); weights "
                "n_i / max_j n_j depend on every client's data. Give weight_cap or use weighting='uniform'")
        if self.example_sampling_rate is not None:
            if self.unit != "example":
                raise ConfigurationError("example_sampling_rate applies only to dp_unit='example'")
            if not 0.0 < self.example_sampling_rate <= 1.0:
                raise ConfigurationError(
                    f"example_sampling_rate must be in (0, 1], got {self.example_sampling_rate!r}")
        if self.unit == "example" and self.aggregator != "local-dp" and self.local_epochs != 1:
            raise ConfigurationError(
                f"with dp_unit='example' and {self.aggregator!r} every round is one DP-SGD step over the "
                f"federation (the noisy sum is the step): local_epochs must be 1, got {self.local_epochs}")

    @property
    def is_dp(self) -> bool:
        """Whether this run's aggregator adds DP noise (epsilon is accounted)."""
        return _declares(self.aggregator, "is_dp")

    @property
    def unit(self) -> str | None:
        """The privacy unit in force: ``"client"``, ``"example"``, or None without DP."""
        if not self.is_dp:
            return None
        return self.dp_unit or "client"

    @property
    def resolved_weighting(self) -> str:
        """The weighting in force (``weighting`` with its default resolved)."""
        if self.weighting is not None:
            return self.weighting
        return "uniform" if self.is_dp else "examples"

    @property
    def example_rate(self) -> float:
        """Poisson rate of each client's example sample (1 unless ``dp_unit="example"`` sets it)."""
        return 1.0 if self.example_sampling_rate is None else float(self.example_sampling_rate)

    @property
    def amplifies_by_client_sampling(self) -> bool:
        """Whether client sampling is charged as an amplification: only central DP (a trusted
        server keeps the sample secret) with Poisson sampling of a fraction < 1, client unit."""
        return (_declared(self.aggregator, "noise_placement") == "central" and self.sampling == "poisson"
                and self.fraction < 1.0 and self.unit == "client")


def clip_options(aggregator: str, clip_norm: float) -> dict[str, float]:
    """The constructor option that carries an L2 ``clip_norm`` to ``aggregator``.

    DP techniques take it as ``clip_norm``; the others as their per-coordinate ``bound``
    (a row of L2 norm ``<= clip_norm`` has every coordinate within it, so none is out of
    range). Classes that still call it ``clip`` get ``clip``.
    """
    params = inspect.signature(aggregator_class(aggregator)).parameters
    key = next((k for k in ("clip_norm", "bound", "clip") if k in params), None)
    return {} if key is None else {key: clip_norm}




@dataclass
class RoundRecord:
    """The measurements of one FedAvg round (JSON-ready via :func:`dataclasses.asdict`).

    Bytes are per round; ``bytes_up_per_client`` / ``bytes_down_per_client`` are means
    over the sampled clients; ``*_seconds`` are measured on this machine except
    ``simulated_seconds`` (device model). ``epsilon`` is cumulative (None without DP).
    ``refused``: the round's actual privacy event did not fit the budget, so its aggregate
    was discarded (model unchanged) and the run stopped.
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
    refused: bool = False


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
    privacy: dict = field(default_factory=dict)

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
            "stop_reason": self.stop_reason, "privacy": self.privacy,
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

    Construction validates everything, calibrates the noise and builds the aggregator,
    so a bad configuration fails here, before any training. :meth:`run` trains and
    returns a :class:`FedAvgResult`.

    Parameters
    ----------
    clients: the federated clients (all with the same feature count and ``n_classes``).
    X_test, y_test: held-out evaluation data.
    config: a :class:`FedAvgConfig`.
    devices: the device fleet (one device per client); default: :meth:`DeviceFleet.sample`.
    seed: int seed of the simulation's statistical choices: client sampling, dropouts,
        SGD shuffling and the device fleet. DP noise, stochastic rounding, each client's
        Poisson sample of its own examples and, when it is charged as an amplification
        (central DP), the Poisson client sample come from a CSPRNG (AES-CTR keyed from
        ``secrets``) unless ``config.reproducible_noise``. Cryptographic secrets never
        come from it.
    aggregator: an already built :class:`secagg.aggregators.Aggregator` to use instead
        of building ``config.aggregator`` (e.g. to share a Paillier key across runs).

    Raises
    ------
    ConfigurationError: unknown aggregator, threshold above the clients per round,
        impossible dropout, missing or inapplicable DP parameters, an event the
        accountant cannot bound. BudgetExceeded: the planned rounds would exceed
        ``target_epsilon``.
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
        self._rng_train = np.random.default_rng(s_train)
        self._rng_drop = np.random.default_rng(s_drop)
        # Noise, stochastic rounding and privacy-relevant sampling: a CSPRNG unless the user
        # explicitly asks for reproducible noise (then they follow ``seed``).
        self._reproducible = bool(config.reproducible_noise)
        self._rng_noise = np.random.default_rng(s_agg) if self._reproducible else secure_generator()
        self._rng_agg = self._rng_noise if self._reproducible else None
        # the client sample follows the seed, except when it is charged as an amplification
        self._rng_sample = (self._rng_noise if config.amplifies_by_client_sampling and not self._reproducible
                            else np.random.default_rng(s_sample))
        self.devices = devices if devices is not None else DeviceFleet.sample(len(clients), np.random.default_rng(s_dev))
        if len(self.devices) != len(clients):
            raise ConfigurationError(f"{len(clients)} clients need {len(clients)} devices, got {len(self.devices)}")
        sizes = np.array([c.n_examples for c in clients], dtype=np.float64)
        self.sizes = sizes
        if config.resolved_weighting == "uniform":
            self.weights = np.ones(len(clients))
        else:
            cap = float(config.weight_cap) if config.weight_cap is not None else float(sizes.max())
            self.weights = np.minimum(sizes / cap, 1.0)
        n = len(clients)
        self.expected_per_round = max(1, int(round(config.fraction * n)))
        self._check_threshold(n)
        self.unit = config.unit
        self.placement = EXAMPLE_PLACEMENTS.get(config.aggregator) if self.unit == "example" else None
        # under client-level DP the server divides by a fixed public constant: the expected number
        # of contributions per round (McMahan et al. 2018's fixed-denominator estimator)
        self.dp_denominator = (max(1.0, config.fraction * n * (1.0 - config.dropout))
                               if self.unit == "client" else None)
        self._vector_clip = config.clip_norm * float(sizes.max())  # example/distributed: public client-vector bound
        self._ledger = PrivacyLedger(config.delta, config.target_epsilon) if config.is_dp else None
        self._given_aggregator = aggregator
        self.noise_multiplier = self._resolve_noise(aggregator)
        if self.unit == "example":
            self.aggregator = aggregator if aggregator is not None else make_aggregator("plain")
            self._est_bytes_up = float(4 * self.dim)
            self._est_bytes_down = float(2 * _MODEL_BYTES_PER_PARAM * self.dim)
            self._est_crypto = 0.0
        else:
            self.aggregator = aggregator if aggregator is not None else self._build_aggregator()
            given_z = getattr(aggregator, "noise_multiplier", None) if config.is_dp else None
            if given_z is not None:
                self.noise_multiplier = float(given_z)
            self._probe()
        self._planned_event = self._plan_event(self._z) if config.is_dp else None
        if config.target_epsilon is not None and self._ledger is not None:
            self._check_budget(config.rounds, self._ledger, config.target_epsilon)

    # ------------------------------------------------------------------ configuration
    @property
    def _z(self) -> float:
        """The resolved noise multiplier (the DP code paths only)."""
        if self.noise_multiplier is None:
            raise ConfigurationError(f"aggregator {self.config.aggregator!r} adds no DP noise")
        return self.noise_multiplier

    @property
    def _fixed_denominator(self) -> float:
        """The public denominator of a client-level DP round."""
        if self.dp_denominator is None:
            raise ConfigurationError("a fixed denominator applies to client-level DP only")
        return self.dp_denominator

    @property
    def _placement(self) -> str:
        """Where example-level noise is added (``dp_unit="example"`` only)."""
        if self.placement is None:
            raise ConfigurationError(f"aggregator {self.config.aggregator!r} has no example-level placement")
        return self.placement

    def _build_aggregator(self, noise_multiplier: float | None = None) -> Aggregator:
        cfg = self.config
        options: dict[str, Any] = clip_options(cfg.aggregator, cfg.clip_norm)
        if cfg.is_dp:
            options["noise_multiplier"] = self.noise_multiplier if noise_multiplier is None else noise_multiplier
        if cfg.aggregator == "distributed-dp" and cfg.dropout:
            # calibrate each client's noise share for the clients expected to survive
            options["expected_dropout"] = cfg.dropout
        options.update(dict(cfg.aggregator_options))
        return make_aggregator(cfg.aggregator, **options)

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

    def _planned_survivors(self, m: int) -> int:
        """Noise shares a distributed round of ``m`` clients is calibrated for (``n_min``)."""
        return max(1, math.ceil(m * (1.0 - self.config.dropout) - 1e-9))

    def _example_distributed(self, z: float, m: int):
        opts = {k: v for k, v in dict(self.config.aggregator_options).items()
                if k in ("bits", "mechanism", "k_stddevs", "rotation_seed")}
        return distributed_params(clip_norm=self.config.clip_norm, noise_multiplier=z, vector_clip=self._vector_clip,
                                  num_clients=m, min_clients=min(m, self._planned_survivors(m)), dim=self.dim,
                                  options=opts)

    def _local_steps(self) -> int:
        """Local DP-SGD steps per round (example unit, local placement): epochs of expected size."""
        return int(self.config.local_epochs * max(1, round(1.0 / self.config.example_rate)))

    def _plan_event(self, z: float, aggregator: Aggregator | None = None):
        """The privacy event of a planned round (expected clients, planned survivors) at noise ``z``."""
        cfg, m = self.config, self.expected_per_round
        if self.unit == "example":
            dist = self._example_distributed(z, m) if self.placement == "distributed" else None
            return example_event(self._placement, z, cfg.example_rate, steps=self._local_steps(),
                                 distributed=dist, clip_norm=cfg.clip_norm, dim=self.dim,
                                 survivors=None if dist is None else dist.min_clients)
        agg = aggregator if aggregator is not None else self.aggregator
        base = agg.dp_event_for(m, self.dim)
        return self._client_event(base)

    def _client_event(self, base):
        """A client-level round's event: Poisson-amplified only under central DP (trusted server)."""
        if self.config.amplifies_by_client_sampling:
            return _dp().PoissonSampledEvent(self.config.fraction, base)
        return base

    def _resolve_noise(self, given: Aggregator | None) -> float | None:
        """The noise multiplier: given, or solved once from the technique's own planned event."""
        cfg = self.config
        if not cfg.is_dp:
            return None
        if cfg.noise_multiplier is not None:
            return float(cfg.noise_multiplier)
        if given is not None and self.unit == "client":
            return float(getattr(given, "noise_multiplier"))
        if cfg.target_epsilon is None:  # pragma: no cover - FedAvgConfig.validate requires one of the two
            raise ConfigurationError(f"aggregator {cfg.aggregator!r} adds DP noise: give noise_multiplier or "
                                     "target_epsilon")
        event_for: Callable[[float], Any]
        if self.unit == "example":
            event_for = self._plan_event
        else:
            def event_for(z: float) -> Any:
                return self._plan_event(z, self._build_aggregator(z))
        return calibrate_noise_multiplier(event_for, cfg.target_epsilon, cfg.delta, cfg.rounds)

    def _check_budget(self, rounds: int, ledger: PrivacyLedger, target_epsilon: float) -> None:
        cfg = self.config
        eps = ledger.epsilon_after(self._planned_event, rounds)
        if eps > target_epsilon:
            raise BudgetExceeded(
                f"{rounds} rounds at noise multiplier {self.noise_multiplier:.4g} spend epsilon {eps:.4g} "
                f"(delta {cfg.delta:g}), above the budget {target_epsilon:g}; raise the noise "
                f"multiplier, train fewer rounds or (central DP) sample fewer clients (Poisson)")

    def _probe(self) -> None:
        """One aggregation of zeros at full size: fails fast on configurations the
        aggregator rejects, and measures its bytes per client for deadline planning.
        Its output is discarded (nothing about any client is in it)."""
        m = self.expected_per_round
        if getattr(self.aggregator, "hides_individual_updates", False) and len(self.clients) >= 2:
            m = max(m, 2)  # a secure sum needs two clients (rounds with one are skipped)
        k = int(round(self.config.dropout * m))
        drop = {int(i): self.config.dropout_round for i in range(m - k, m)} if k else None
        res = self.aggregator.aggregate(np.zeros((m, self.dim)), dropout=drop, rng=np.random.default_rng(0))
        live = res.survivors if res.survivors.size else np.arange(m)
        self._est_bytes_up = float(np.mean(res.bytes_up[live]))
        self._est_bytes_down = float(np.mean(res.bytes_down[live])) + _MODEL_BYTES_PER_PARAM * self.dim
        self._est_crypto = float(np.mean(res.client_seconds[live]))

    def privacy_info(self) -> dict:
        """The privacy facts of this run (JSON-ready): unit, relation, accountant, amplification."""
        cfg = self.config
        info: dict[str, Any] = {"dp": cfg.is_dp, "reproducible_noise": self._reproducible}
        if not cfg.is_dp:
            return info
        unit = self.unit or "client"  # set whenever DP is on
        info.update(
            unit=unit, neighbouring=NEIGHBOURING[unit], delta=cfg.delta,
            accountant=accountant_name(), noise_multiplier=self.noise_multiplier,
            target_epsilon=cfg.target_epsilon,
            placement=self.placement or _declared(cfg.aggregator, "noise_placement") or "unspecified",
            amplification=("client sampling (Poisson, rate %g)" % cfg.fraction if cfg.amplifies_by_client_sampling
                           else "example sampling (Poisson, rate %g, drawn by each client)" % cfg.example_rate
                           if self.unit == "example" and cfg.example_rate < 1 else "none"),
            weighting=cfg.resolved_weighting, weight_cap=cfg.weight_cap, denominator=self.dp_denominator,
        )
        return info

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

    def _dropouts(self, m: int, flops: np.ndarray, chosen: np.ndarray, rtt: int):
        cfg = self.config
        drop: dict[int, str] = {}
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
        return drop, late, fleet

    def _client_round(self, params: np.ndarray, rows: np.ndarray, chosen: np.ndarray, drop: dict):
        """Client unit: local training is done; aggregate the clipped, weighted deltas.

        Returns ``(AggregationResult or None, abort reason, event or None, step or None)``.
        """
        cfg = self.config
        try:
            res: AggregationResult = self.aggregator.aggregate(rows, dropout=drop or None, rng=self._rng_agg)
        except ProtocolAbort as exc:
            return None, exc.reason, None, None
        surv = res.survivors
        event = None
        if cfg.is_dp:
            base = res.info.get("dp_event")
            if base is None:
                base = _dp().GaussianEvent(float(res.info.get("noise_multiplier", self._z)))
            event = self._client_event(base)
            denom = self._fixed_denominator
        else:
            denom = float(self.weights[chosen][surv].sum())
        step = cfg.server_lr * res.total / denom if surv.size and denom > 0 else None
        return res, "", event, step

    def _example_round(self, params: np.ndarray, rows: np.ndarray, chosen: np.ndarray, drop: dict, r: int):
        """Example unit: every client's DP-SGD contribution, then the placement's aggregation."""
        cfg = self.config
        m = len(chosen)
        keep = np.setdiff1d(np.arange(m), np.array(sorted(drop), dtype=np.int64))
        z = self._z
        sizes = self.sizes[chosen]
        if self.placement == "local":
            res = self.aggregator.aggregate(rows, dropout=drop or None, rng=None)
            surv = res.survivors
            event = example_event("local", z, cfg.example_rate, steps=self._local_steps(), clip_norm=cfg.clip_norm,
                                  dim=self.dim)
            step = cfg.server_lr * res.total / surv.size if surv.size else None
            return res, "", event, step
        if self.placement == "central":
            er = central_round(rows, keep, clip_norm=cfg.clip_norm, noise_multiplier=z, rng=self._rng_noise,
                               event=example_event("central", z, cfg.example_rate, clip_norm=cfg.clip_norm,
                                                   dim=self.dim))
            res = AggregationResult(total=er.total, survivors=er.survivors, noise_std=er.noise_std,
                                    costs=Costs.one_round(len(er.bytes_up), bytes_up=er.bytes_up,
                                                          bytes_down=er.bytes_down, client_seconds=er.client_seconds,
                                                          server_seconds=er.server_seconds))
            event = er.event
        else:
            from secagg.dp.distributed import distributed_dp_sum

            dist = self._example_distributed(z, m)
            options = {k: v for k, v in dict(cfg.aggregator_options).items()
                       if k in ("threshold", "graph", "k", "secure_sum")}
            try:
                out = distributed_dp_sum(rows, dist, dropout=drop or None, rng=self._rng_noise, delta=None,
                                         **options)
            except ProtocolAbort as exc:
                return None, exc.reason, None, None
            res = AggregationResult(total=out.total, survivors=out.survivors, costs=out.costs,
                                    noise_std=out.noise_std, info={"min_clients": dist.min_clients, "scale": dist.scale})
            event = example_event("distributed", z, cfg.example_rate, distributed=dist, clip_norm=cfg.clip_norm,
                                  survivors=max(1, out.survivors.size))
        surv = res.survivors
        expected_batch = cfg.example_rate * float(sizes[surv].sum())  # public sizes, public participation
        step = None
        if surv.size and expected_batch > 0:
            W = params.reshape(self.n_features + 1, -1)
            grad = (res.total / expected_batch).reshape(W.shape)
            grad[:-1] += cfg.l2 * W[:-1]
            step = -cfg.server_lr * cfg.lr * grad.ravel()
        return res, "", event, step

    def run(self, *, progress: bool = False, desc: str | None = None) -> FedAvgResult:
        """Train for ``config.rounds`` rounds; returns the :class:`FedAvgResult`.

        Under DP the round's actual event (with the actual survivors) is charged once the
        survivor set is fixed and *before* its aggregate is used; a round that does not
        fit the budget is refused (recorded with ``refused=True``, model unchanged) and
        the run stops.
        """
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
        rtt = 1 if self.aggregator is None else int(self.aggregator.round_trips)
        hides = bool(getattr(self.aggregator, "hides_individual_updates", False)) or self.placement == "distributed"
        stop_reason = ""
        for r in rounds:
            if self._ledger is not None and not self._ledger.fits(self._planned_event):
                # even a round as planned no longer fits: stop before any client trains
                stop_reason = (f"the budget {cfg.target_epsilon:g} cannot pay for another round (spent "
                               f"{self._ledger.epsilon:.4g}); the run stops")
                break
            chosen = self._sample()
            m = len(chosen)
            if m == 0 or (hides and m < 2):
                # nobody sampled, or one client whose update a secure sum could not hide: nothing is released
                acc, loss = self.evaluate(params)
                reason = "" if m == 0 else "one client sampled: secure aggregation needs at least 2; round skipped"
                history.append(self._empty_record(r, m, acc, loss, reason))
                continue
            updates, train_s, flops, train_losses = [], 0.0, np.zeros(m), np.zeros(m)
            clipped = np.zeros(m)  # fraction of each client's contribution (client) or examples (example) clipped
            for j, i in enumerate(chosen):
                c = self.clients[i]
                t0 = time.perf_counter()
                if self.unit == "example":
                    if self.placement == "local":
                        new, frac, seen = local_dp_sgd(params, c.X, c.y, c.n_classes, clip_norm=cfg.clip_norm,
                                                       noise_multiplier=self._z,
                                                       rate=cfg.example_rate, steps=self._local_steps(), lr=cfg.lr,
                                                       l2=cfg.l2, rng=self._rng_noise)
                        updates.append(new - params)
                    else:
                        s, seen, k = clipped_gradient_sum(params, c.X, c.y, c.n_classes, cfg.clip_norm,
                                                          cfg.example_rate, self._rng_noise)
                        updates.append(s)
                        frac = k / seen if seen else 0.0
                    clipped[j] = frac
                    flops[j] = float(FLOPS_PER_EXAMPLE_PARAM * max(seen, 1) * self.dim)
                    train_losses[j] = loss_and_grad(params, c.X, c.y, c.n_classes, cfg.l2)[0]
                    train_s += time.perf_counter() - t0
                else:
                    u = c.local_update(params, epochs=cfg.local_epochs, batch_size=cfg.batch_size,
                                       lr=cfg.lr, l2=cfg.l2, rng=self._rng_train)
                    updates.append(u.delta)
                    train_s += u.seconds
                    flops[j] = u.flops
                    train_losses[j] = u.train_loss
            if self.unit == "example":
                rows = np.stack(updates)
            else:
                rows, was_clipped = clip_and_weight(np.stack(updates), self.weights[chosen], cfg.clip_norm)
                clipped = was_clipped.astype(np.float64)

            drop, late, fleet = self._dropouts(m, flops, chosen, rtt)
            if self.unit == "example":
                res, reason, event, step = self._example_round(params, rows, chosen, drop, r)
            else:
                res, reason, event, step = self._client_round(params, rows, chosen, drop)
            aborted = res is None
            refused = False
            if event is not None and self._ledger is not None:
                # the survivor set is fixed: charge what this round really costs before using it
                try:
                    self._ledger.charge(event)
                except BudgetExceeded as exc:
                    refused, stop_reason, step = True, str(exc), None
            if step is not None:
                params = params + step
            model_down = _MODEL_BYTES_PER_PARAM * self.dim
            if res is not None:
                surv = res.survivors
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
            done = np.zeros(m, dtype=bool)
            done[surv] = True
            wait = float(actual[done].max()) if done.any() else float(actual.max())
            if cfg.deadline is not None and late.any():
                wait = float(cfg.deadline)
            sim = wait + ssec
            eps = self._ledger.epsilon if self._ledger is not None else None
            acc, loss = self.evaluate(params)
            history.append(RoundRecord(
                round=r, sampled=m, survivors=int(surv.size), dropped=len(drop), late=int(late.sum()),
                aborted=aborted, test_accuracy=acc, test_loss=loss, train_loss=float(train_losses.mean()),
                bytes_up=int(up.sum()), bytes_down=int(down.sum()),
                bytes_up_per_client=float(up.mean()), bytes_down_per_client=float(down.mean()),
                train_seconds=train_s, crypto_client_seconds=float(np.sum(csec)), crypto_server_seconds=ssec,
                simulated_seconds=sim, noise_std=noise_std, epsilon=eps,
                clipped_fraction=float(clipped.mean()), abort_reason=reason, refused=refused))
            if bar is not None:
                bar.set_postfix(acc=f"{acc:.3f}", eps="-" if eps is None else f"{eps:.2f}")
            if refused:
                break
        if bar is not None:
            bar.close()
        return FedAvgResult(
            dataset=self.dataset_name, aggregator=cfg.aggregator, config=cfg, params=params,
            n_classes=self.n_classes, n_features=self.n_features, history=history, partition=self.partition_info,
            devices=self.devices.to_dict(), hides_individual_updates=hides,
            noise_multiplier=self.noise_multiplier, wall_seconds=time.perf_counter() - t_start,
            stop_reason=stop_reason, privacy=self.privacy_info())

    def _empty_record(self, r: int, m: int, acc: float, loss: float, reason: str) -> RoundRecord:
        """A round that released nothing (nobody, or a lone client under secure aggregation, sampled).

        An empty Poisson sample is itself an outcome of the sampling that central DP's
        amplification accounts for, so the planned event is charged then (it fits: checked
        at the start of the round); a skipped round under the other techniques released
        nothing and costs nothing.
        """
        eps = None
        if self._ledger is not None:
            if m == 0 and self.config.amplifies_by_client_sampling:
                self._ledger.charge(self._planned_event)
            eps = self._ledger.epsilon
        return RoundRecord(round=r, sampled=m, survivors=0, dropped=0, late=0, aborted=bool(reason),
                           test_accuracy=acc, test_loss=loss, train_loss=float("nan"), bytes_up=0, bytes_down=0,
                           bytes_up_per_client=0.0, bytes_down_per_client=0.0, train_seconds=0.0,
                           crypto_client_seconds=0.0, crypto_server_seconds=0.0, simulated_seconds=0.0,
                           noise_std=0.0, epsilon=eps, clipped_fraction=0.0, abort_reason=reason)


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
