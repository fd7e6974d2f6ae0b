"""An adversarial lab for SecAgg / SecAgg+: real honest :class:`Client` objects, a server
that crafts every message itself, corrupt clients that hand the server everything they
hold, and an extractor that computes what the server can derive from what it collected.

The extractor is the ground truth of every attack test: for each honest client ``u`` it
rebuilds whatever secrets the collected shares allow (``b_u`` from self-mask shares,
``s_u`` from mask-key shares, corrupt holders' shares included), derives every pairwise
mask seed it can (from ``s_u``, from a neighbour's rebuilt or corrupt key), and, when it
has ``b_u`` and every seed ``u`` masked with, unmasks ``u``'s masked input and compares it
with the true input. An attack succeeds iff some honest input comes out exactly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np

from secagg import keys, prg, shamir
from secagg.errors import SecAggError, SecretSharingError
from secagg.quantize import reduce_to_ring
from secagg.masking import Client, MaskingConfig, Server, ThreatModel
from secagg.masking import _messages as M
from secagg.masking.client import SHARE_LIMBS
from secagg.masking.config import PAIR_MASK_LABEL, SEED_LEN, SELF_MASK_LABEL, consistency_mac, pair_info, voucher_digest
from secagg.masking.rounds import InputSent, KeysAdvertised, KeysShared, ServerDone


@dataclass
class Lab:
    """One session under attack.

    ``corrupt`` clients run the honest code but the adversary reads their state, signs
    whatever it likes with their keys and vouches for any survivor set with their
    pairwise voucher keys. ``signing_keys`` (long-term Ed25519, the PKI) can
    be shared across labs to replay across sessions; ``nonce`` is the server's session id.
    """

    n: int
    dim: int = 6
    graph: str = "complete"
    corrupt: frozenset[int] = frozenset()
    threat: ThreatModel = field(default_factory=ThreatModel)
    k: int | None = None
    threshold: int | None = None
    signing_keys: list | None = None
    nonce: bytes | None = None
    graph_seed: bytes | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.cfg = MaskingConfig(n=self.n, dim=self.dim, graph=self.graph, k=self.k, threshold=self.threshold,
                                 threat=self.threat)
        self.g = self.cfg.build_graph(self.graph_seed or secrets.token_bytes(32))
        if self.signing_keys is None:
            self.signing_keys = [keys.SigningKey.generate() for _ in range(self.n)]
        self.directory = {u: sk.public_bytes() for u, sk in enumerate(self.signing_keys)}
        rng = np.random.default_rng(self.seed)
        self.x = rng.integers(0, 2**32, (self.n, self.dim), dtype=np.uint64).astype(np.uint32)
        self.server = Server(self.cfg, self.g, session=self.nonce or secrets.token_bytes(16),
                             directory=self.directory if self.cfg.consistency_check else None)
        self.clients = [
            Client(u, self.cfg, self.g, self.x[u], signing_key=self.signing_keys[u] if self.cfg.consistency_check else None,
                   directory=self.directory if self.cfg.consistency_check else None)
            for u in range(self.n)
        ]
        self.honest = [u for u in range(self.n) if u not in self.corrupt]
        self.masked: dict[int, M.MaskedInput] = {}
        self.advertised: dict[int, tuple[bytes, bytes, bytes]] = {}  # id -> (c_pk, s_pk, sig) as received
        self.responses: list[M.UnmaskResponse] = []
        self.refusals: dict[int, SecAggError] = {}
        self.vouchers: dict[tuple[int, int, tuple[int, ...]], bytes] = {}  # (author, recipient, view) -> MAC
        self.history: dict[int, dict[type, object]] = {u: {} for u in range(self.n)}  # every state each client had

    def past(self, u: int, cls: type):
        """The state of class ``cls`` client ``u`` went through (or None): corrupt clients
        hand the adversary everything they ever held."""
        return self.history[u].get(cls)

    # ------------------------------------------------------------------ honest rounds
    def deliver(self, msg) -> list:
        """Give ``msg`` to its recipient; a refusal is recorded, not raised."""
        u = msg.recipient
        try:
            out = self.clients[u].receive(M.decode_message(msg.to_bytes()))
        except SecAggError as exc:
            self.refusals[u] = exc
            return []
        self.history[u][type(self.clients[u].state)] = self.clients[u].state
        return out

    def run_to_masked_inputs(self, *, tamper_forward=None, drop=()) -> None:
        """Advertise, share keys and masked inputs through the (honest) server machinery.
        ``tamper_forward(msg) -> msg`` may alter ForwardShares; ``drop`` clients go silent
        after sharing keys."""
        out = self.server.start()
        for rnd in range(3):
            for m in out:
                if rnd == 2 and m.recipient in drop:
                    continue
                if rnd == 2 and tamper_forward is not None:
                    m = tamper_forward(m)
                for rep in self.deliver(m):
                    if isinstance(rep, M.MaskedInput):
                        self.masked[rep.sender] = rep
                    if isinstance(rep, M.AdvertiseKeys):
                        self.advertised[rep.sender] = (rep.c_pk, rep.s_pk, rep.signature)
                    try:
                        self.server.receive(M.decode_message(rep.to_bytes()))
                    except SecAggError:
                        pass
            if rnd < 2:
                out = self.server.close_round()
        # the adversary never needs the honest close of masked inputs: it decides views

    def run_honest_server(self, *, tamper=None, silent=()) -> np.ndarray:
        """All five rounds through the honest server; ``tamper(msg) -> msg`` rewrites any
        client message (malicious clients), ``silent`` clients never answer. Returns the
        ring sum (raises the server's ProtocolAbort)."""
        out = self.server.start()
        while not isinstance(self.server.state, ServerDone):
            for m in out:
                if m.recipient in silent:
                    continue
                for rep in self.deliver(m):
                    if tamper is not None:
                        rep = tamper(rep)
                    if isinstance(rep, M.MaskedInput):
                        self.masked[rep.sender] = rep
                    try:
                        self.server.receive(M.decode_message(rep.to_bytes()))
                    except SecAggError:
                        pass  # the driver drops the sender (simulate records it in misbehaving)
            out = self.server.close_round()
        return self.server.result

    @property
    def R(self) -> bytes:
        return self.server.R

    def view_of(self, u: int) -> bytes | None:
        """The session identity client ``u`` computed (None before the keys broadcast)."""
        st = self.past(u, KeysShared)
        return None if st is None else st.R

    # ------------------------------------------------------------------ adversarial rounds
    def collect_vouchers(self, views: dict[int, tuple[int, ...]], extra_views=()) -> None:
        """Each honest client ``u`` is shown ``views[u]``; corrupt clients vouch for every
        view in ``views`` and ``extra_views`` to each of their neighbours."""
        for u, view in views.items():
            if u in self.corrupt:
                continue
            view = tuple(sorted(view))
            req = M.ConsistencyRequest(self.server.session, u, self.n, view)
            for rep in self.deliver(req):
                for w, mac in rep.macs:
                    self.vouchers[(u, w, view)] = mac
        for view in {tuple(sorted(v)) for v in list(views.values()) + list(extra_views)}:
            for c in self.corrupt:
                st = self.past(c, KeysShared)
                if st is None:
                    continue
                for w, key in st.mac_keys.items():
                    self.vouchers[(c, w, view)] = consistency_mac(key, voucher_digest(st.R, self.n, view))

    def request_unmask(self, u: int, view: tuple[int, ...], dropped: tuple[int, ...], macs=None) -> None:
        """Ask honest ``u`` to unmask ``view`` (with the given vouchers, or the collected
        ones addressed to ``u`` for that view)."""
        view = tuple(sorted(view))
        if macs is None:
            macs = tuple(sorted((a, mac) for (a, w, vw), mac in self.vouchers.items() if vw == view and w == u))
        req = M.UnmaskRequest(self.server.session, u, self.n, view, tuple(sorted(dropped)), tuple(macs))
        for rep in self.deliver(req):
            self.responses.append(rep)

    # ------------------------------------------------------------------ extraction
    def shares_of(self, owner: int, which: int) -> dict[int, np.ndarray]:
        """Every share of ``owner``'s secret (0: self-mask seed, 1: mask key) the
        adversary holds: revealed by honest clients, or held by corrupt ones."""
        out: dict[int, np.ndarray] = {}
        for r in self.responses:
            for v, blob in (r.self_shares if which == 0 else r.key_shares):
                if v == owner:
                    out[r.sender] = shamir.decode_share_values(blob, 1, SHARE_LIMBS)[0]
        for c in self.corrupt:
            st = self.past(c, InputSent)
            sh = None if st is None else st.shares.get(owner)
            if sh is not None:
                out[c] = sh[which]
        return out

    def rebuild(self, owner: int, which: int) -> bytes | None:
        shares = self.shares_of(owner, which)
        t = self.cfg.threshold
        if len(shares) < t:
            return None
        xs = sorted(shares)
        try:
            secret, _ = shamir.robust_combine([w + 1 for w in xs], np.stack([shares[w] for w in xs]), SEED_LEN,
                                              threshold=t)
        except SecretSharingError:
            return None
        return secret

    def mask_key(self, v: int) -> keys.AgreementKey | None:
        if v in self.corrupt and self.past(v, KeysAdvertised) is not None:
            return self.past(v, KeysAdvertised).s_key
        sk = self.rebuild(v, 1)
        if sk is None:
            return None
        try:
            return keys.AgreementKey.from_bytes(sk)
        except SecAggError:
            return None

    def recovered_inputs(self) -> dict[int, bool]:
        """For each honest client whose masked input the server holds: whether the
        adversary can unmask it exactly."""
        out = {}
        for u in self.honest:
            mi = self.masked.get(u)
            shared, sent, adv = self.past(u, KeysShared), self.past(u, InputSent), self.past(u, KeysAdvertised)
            if mi is None or sent is None:
                continue
            b = self.rebuild(u, 0)
            if b is None:
                out[u] = False
                continue
            y = mi.vector.copy()
            prg.add_mask(y, b, -1, label=SELF_MASK_LABEL)
            ok = True
            seeds, signs = [], []
            key_u = self.mask_key(u)
            for w in sorted(sent.u2 - {u}):
                if key_u is not None:
                    secret = key_u.exchange(shared.peers[w][1])
                else:
                    key_w = self.mask_key(w)
                    if key_w is None:
                        ok = False
                        break
                    secret = key_w.exchange(adv.s_key.public_bytes())
                seeds.append(keys.hkdf(secret, info=pair_info(sent.R, u, w, b"mask")))
                signs.append(-1 if u < w else 1)
            if not ok:
                out[u] = False
                continue
            if seeds:
                prg.add_masks(y, seeds, signs, label=PAIR_MASK_LABEL)
            reduce_to_ring(y, self.cfg.bits)
            out[u] = bool(np.array_equal(y, self.x[u]))
        return out

    def both_secrets(self) -> dict[int, bool]:
        """For each honest client: whether the adversary holds ``t`` shares of both its
        self-mask seed and its mask key (the structural break)."""
        return {u: self.rebuild(u, 0) is not None and self.rebuild(u, 1) is not None for u in self.honest}


def dropped_for(lab: Lab, view) -> tuple[int, ...]:
    """Clients that shared keys but are outside ``view``."""
    return tuple(sorted(set(lab.server.state.u2) - set(view)))
