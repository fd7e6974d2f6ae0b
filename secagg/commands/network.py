"""`secagg serve`, `secagg client`, `secagg keygen` and `secagg tls-cert`: run one
secure-sum session (SecAgg, Bonawitz et al. CCS 2017 / SecAgg+, Bell et al. CCS 2020)
between processes or machines over TLS, with clients authenticated against an allow-list
of Ed25519 keys (see docs/deployment.md). Every weaker setting is a flag whose name starts
with ``--insecure-``.

``python -m secagg.commands.network ...`` runs the same commands without loading the
rest of the CLI (a faster start for client processes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..masking.rounds import ROUNDS

#: exit status of `secagg client` when it cannot know whether its input is in the sum
EXIT_UNKNOWN = 3


def register(commands, demos) -> None:
    from ..quantize import OUT_OF_RANGE_POLICIES
    from ._args import (
        POSITIVE_FLOAT,
        POSITIVE_INT,
        PORT,
        RATE,
        RING_BITS,
        SEED,
        Renamed,
        in_file,
        int_in,
        out_dir,
        out_file,
    )

    s = commands.add_parser(
        "serve",
        help="run the aggregation server of one secure-sum session (TLS, allow-listed clients)",
        description="Wait for the clients on the allow-list (--clients-file), run SecAgg (--graph complete) or "
        "SecAgg+ (--graph sparse) over TLS with per-round deadlines, write the float sum of the survivors' "
        "inputs to --out and a JSON summary (survivors, dropped clients and why, timings) next to it. Exits 1 "
        "with a message if the session aborts (fewer live clients than the threshold).",
    )
    s.add_argument("--clients", type=POSITIVE_INT, metavar="N",
                   help="number of client ids in the session (default: the number of entries in --clients-file)")
    s.add_argument("--clients-file", type=in_file, metavar="FILE",
                   help="allow-list: one '<id> <ed25519 public key hex>' line per client (secagg keygen prints them)")
    s.add_argument("--threshold", type=POSITIVE_INT, metavar="T",
                   help="Shamir threshold (default: the parameter finder's for --corrupt-fraction)")
    s.add_argument("--dim", type=POSITIVE_INT, required=True, metavar="D", help="vector length")
    s.add_argument("--port", type=PORT, required=True, metavar="P",
                   help="TCP port, 0..65535 (0: any free port, printed)")
    s.add_argument("--out", type=out_file, required=True, metavar="SUM.npy", help="where to write the float64 sum")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--tls-cert", type=in_file, metavar="FILE",
                   help="server certificate (PEM; secagg tls-cert makes one)")
    s.add_argument("--tls-key", type=in_file, metavar="FILE", help="server private key (PEM)")
    s.add_argument("--bound", type=POSITIVE_FLOAT, default=1.0,
                   help="per-coordinate bound of the clients' inputs (default 1.0)")
    s.add_argument("--out-of-range", choices=OUT_OF_RANGE_POLICIES, default="raise",
                   help="a client input beyond --bound: the client refuses before sending (raise), or clips the "
                        "values and counts them (clip)")
    s.add_argument("--clip", action=Renamed, new="--bound (the per-coordinate bound; out-of-range inputs are "
                   "refused unless --out-of-range clip)")
    s.add_argument("--bits", type=RING_BITS, default=32, help="ring size in bits (default 32)")
    s.add_argument("--graph", choices=("complete", "sparse"), default="complete",
                   help="SecAgg or SecAgg+ (default complete)")
    s.add_argument("--k", type=POSITIVE_INT, help="SecAgg+ graph degree (default: the parameter finder's)")
    s.add_argument("--deadline", type=POSITIVE_FLOAT, default=30.0, metavar="SECONDS",
                   help="per-round deadline (default 30)")
    s.add_argument("--join-timeout", type=POSITIVE_FLOAT, default=120.0, metavar="SECONDS",
                   help="how long to wait for all clients to register (default 120)")
    s.add_argument("--hello-timeout", type=POSITIVE_FLOAT, default=10.0, metavar="SECONDS",
                   help="a new connection must finish TLS and register within this time (default 10)")
    s.add_argument("--max-connections", type=POSITIVE_INT, help="simultaneous connections (default 2N+16)")
    s.add_argument("--summary", type=out_file, metavar="FILE.json",
                   help="summary JSON (default: --out with suffix .json)")
    s.add_argument("--ring-out", type=out_file, metavar="FILE.npy",
                   help="also write the exact ring sum (uint32/uint64)")
    s.add_argument("--port-file", type=out_file, metavar="FILE",
                   help="write the bound port number into FILE once listening")
    s.add_argument("--quiet", action="store_true", help="no progress log on stderr")
    w = s.add_argument_group("insecure settings (each one weakens what the session protects)")
    w.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP instead of TLS: anyone on the network can read and change the frames")
    w.add_argument("--insecure-open-registration", action="store_true",
                   help="no allow-list: anyone may register under any id with any key (trust on first use)")
    w.add_argument("--insecure-honest-but-curious", action="store_true",
                   help="skip the signed survivor-set round: secure only if the server follows the protocol")
    s.add_argument("--corrupt-fraction", type=RATE, default=0.05,
                   help="fraction of clients assumed to collude with the server, in [0, 1); sets the default "
                        "threshold and degree (default 0.05; lower is a weaker threat model)")
    s.add_argument("--min-survivors", type=POSITIVE_INT, metavar="M",
                   help="clients refuse to unmask fewer survivors (default: the parameter finder's floor)")
    s.add_argument("--no-consistency-check", action=Renamed, new="--insecure-honest-but-curious")
    s.add_argument("--allow-low-threshold", action=Renamed,
                   new="--corrupt-fraction F (the threshold must hold against it) or --insecure-honest-but-curious")
    s.set_defaults(func=run_serve)

    c = commands.add_parser(
        "client",
        help="join a secure-sum session as one client",
        description="Connect to `secagg serve` over TLS (verified against --ca), register with the identity key "
        "--key, check the session against this client's policy, and contribute --input (a .npy float vector "
        "of the session's length) or a --random vector. Exit status: 0 when the server reports this client's "
        f"input in the sum, 1 when it is not (or on an error), {EXIT_UNKNOWN} when the client cannot know.",
    )
    c.add_argument("--server", required=True, metavar="HOST:PORT")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE.npy", help="float vector to contribute")
    src.add_argument("--random", action="store_true", help="contribute a uniform random vector in [-1, 1]^D")
    c.add_argument("--key", type=in_file, metavar="FILE", help="this client's identity key (secagg keygen); its "
                   "public key must be on the server's allow-list")
    c.add_argument("--ca", "--tls-ca", dest="ca", type=in_file, metavar="FILE",
                   help="CA certificate (PEM) the server's certificate must chain to; for a self-signed server "
                   "certificate, the certificate itself")
    c.add_argument("--server-name", "--tls-server-name", dest="server_name", metavar="NAME",
                   help="name the server certificate must carry (default: the host of --server)")
    c.add_argument("--peers", type=in_file, metavar="FILE", help="the allow-list: refuse a session whose key "
                   "directory disagrees with it (protects against a server that invents clients)")
    c.add_argument("--id", type=int_in(0), help="the id this client expects (the allow-list decides; a mismatch is "
                   "refused)")
    c.add_argument("--seed", type=SEED, help="seed of the --random vector only (the stochastic rounding and every "
                   "key come from the OS CSPRNG)")
    c.add_argument("--timeout", type=POSITIVE_FLOAT, default=300.0, metavar="SECONDS",
                   help="give up if the server is silent this long once registered (default 300)")
    c.add_argument("--save-input", type=out_file, metavar="FILE.npy",
                   help="write the float vector contributed (useful with --random)")
    c.add_argument("--save-ring", type=out_file, metavar="FILE.npy", help="write the quantized ring vector contributed")
    c.add_argument("--crash-at", choices=ROUNDS, help="fault injection: SIGKILL this process when ROUND starts")
    c.add_argument("--stall-at", choices=ROUNDS, help="fault injection: stop answering (stay connected) at ROUND")
    w = c.add_argument_group("insecure settings (each one weakens what this client is protected against)")
    w.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP instead of TLS: anyone on the network can read and change the frames")
    w.add_argument("--insecure-open-registration", action="store_true",
                   help="register with a throw-away key (no --key) and accept a server without an allow-list")
    w.add_argument("--insecure-honest-but-curious", action="store_true",
                   help="accept a session without the consistency check (a lying server can unmask this input)")
    p = c.add_argument_group("policy (what this client requires, whatever the server announces)")
    p.add_argument("--corrupt-fraction", type=RATE, default=0.05,
                   help="fraction of clients this client assumes collude with the server, in [0, 1): the announced "
                        "threshold and degree must be secure against it (default 0.05; lower is a weaker threat model)")
    p.add_argument("--min-threshold", type=POSITIVE_INT, metavar="T", help="refuse a Shamir threshold below T")
    p.add_argument("--min-degree", type=POSITIVE_INT, metavar="K", help="refuse a SecAgg+ degree below K")
    p.add_argument("--min-survivors", type=POSITIVE_INT, metavar="M",
                   help="refuse a session whose survivor floor is below M (e.g. the noise contributions a DP "
                        "guarantee needs)")
    c.add_argument("--allow-low-threshold", action=Renamed,
                   new="--corrupt-fraction F (the threshold must hold against it) or --min-threshold T")
    c.set_defaults(func=run_client_cmd)

    k = commands.add_parser(
        "keygen",
        help="create a client identity key and print its allow-list line",
        description="Write a fresh Ed25519 private key (PKCS#8 PEM, file mode 0600) for `secagg client --key` "
        "and print the line '<id> <public key hex>' to add to the server's --clients-file.",
    )
    k.add_argument("--out", type=out_file, required=True, metavar="FILE", help="where to write the private key")
    k.add_argument("--id", type=int_in(0), required=True, help="the client id this key is for (0..N-1)")
    k.add_argument("--force", action="store_true", help="overwrite an existing key file")
    k.set_defaults(func=run_keygen)

    g = commands.add_parser(
        "tls-cert",
        help="write a self-signed TLS certificate and key for `secagg serve --tls-cert/--tls-key`",
        description="Generate an ECDSA P-256 key and a self-signed certificate (its own CA: give cert.pem to "
        "clients as --ca). For private deployments and demos; use your organisation's CA otherwise.",
    )
    g.add_argument("--out", type=out_dir, default="tls", help="folder for cert.pem and key.pem (default: tls)")
    g.add_argument("--host", action="append", help="DNS name or IP the server is reached at (repeatable; "
                   "default localhost and 127.0.0.1)")
    g.add_argument("--days", type=POSITIVE_INT, default=30, help="validity in days (default 30)")
    g.set_defaults(func=run_tls_cert)


# ---------------------------------------------------------------------- flag checks
def _load(flag: str, load, path):
    """``load(path)``; a configuration error (unreadable or malformed file) names ``flag``."""
    from ..errors import ConfigurationError, InsecureParameterError

    try:
        return load(path)
    except ConfigurationError as exc:
        if flag in str(exc):
            raise
        cls = InsecureParameterError if isinstance(exc, InsecureParameterError) else ConfigurationError
        raise cls(f"{flag}: {exc}") from None


def _parse_server(text: str) -> tuple[str, int]:
    from ..errors import InputError

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--server must be HOST:PORT with a port in 1..65535, got {text!r}")
    return host.strip("[]"), int(port)


def _write(path, write) -> None:
    """``write(path)``; an OSError becomes a one-line :class:`ConfigurationError`."""
    from ..errors import ConfigurationError

    try:
        write(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------- serve
def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    import numpy as np

    from ..errors import ConfigurationError, InsecureParameterError, ProtocolAbort
    from ..masking.config import MaskingConfig
    from ..masking.params import ThreatModel
    from ..transport import load_allow_list
    from ..transport.server import AggregationServer
    from ..transport.tls import server_context

    if args.insecure_plaintext and (args.tls_cert or args.tls_key):
        raise ConfigurationError("--insecure-plaintext contradicts --tls-cert/--tls-key: choose one")
    if not args.insecure_plaintext and not (args.tls_cert and args.tls_key):
        raise InsecureParameterError(
            "TLS needs --tls-cert and --tls-key (secagg tls-cert makes a self-signed pair); "
            "--insecure-plaintext runs without TLS")
    if args.insecure_open_registration and args.clients_file:
        raise ConfigurationError("--insecure-open-registration contradicts --clients-file: choose one")
    if not args.insecure_open_registration and not args.clients_file:
        raise InsecureParameterError(
            "registration needs an allow-list of client keys: --clients-file FILE with '<id> <public key>' lines "
            "(secagg keygen prints them); --insecure-open-registration lets anyone take any id")
    allow_list = _load("--clients-file", load_allow_list, args.clients_file) if args.clients_file else None
    n = args.clients
    if n is None:
        if allow_list is None:
            raise ConfigurationError("--clients is required with --insecure-open-registration")
        n = len(allow_list)
    if allow_list is not None and (bad := sorted(u for u in allow_list if not 0 <= u < n)):
        raise ConfigurationError(f"--clients-file lists ids {bad[:5]} outside 0..{n - 1} (--clients {n})")
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s serve: %(message)s", stream=sys.stderr)
    try:
        threat = ThreatModel(
            adversary="honest-but-curious" if args.insecure_honest_but_curious else "active",
            corrupt_fraction=args.corrupt_fraction,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"--corrupt-fraction: {exc}") from None
    try:
        cfg = MaskingConfig(
            n=n, dim=args.dim, bits=args.bits, threshold=args.threshold, graph=args.graph, k=args.k, threat=threat,
            min_survivors=args.min_survivors,
        )
    except InsecureParameterError as exc:
        raise InsecureParameterError(
            f"--threshold/--k: {exc} (--corrupt-fraction or --insecure-honest-but-curious)") from None
    ctx = (_load("--tls-cert/--tls-key", lambda p: server_context(*p), (args.tls_cert, args.tls_key))
           if not args.insecure_plaintext else None)
    out = Path(args.out)
    summary_path = Path(args.summary) if args.summary else out.with_suffix(".json")
    server = AggregationServer(
        cfg, bound=args.bound, out_of_range=args.out_of_range, host=args.host, port=args.port, ssl_context=ctx,
        allow_list=allow_list,
        insecure_plaintext=args.insecure_plaintext, insecure_open_registration=args.insecure_open_registration,
        round_deadline=args.deadline, join_timeout=args.join_timeout, hello_timeout=args.hello_timeout,
        max_connections=args.max_connections,
    )

    async def main():
        try:
            port = await server.start()
        except (OSError, OverflowError) as exc:
            raise ConfigurationError(
                f"cannot listen on {args.host}:{args.port} (--host/--port): {getattr(exc, 'strerror', None) or exc}"
            ) from None
        mode = "TLS" if ctx else "plain TCP (insecure)"
        reg = "allow-list" if allow_list is not None else "open registration (insecure)"
        beyond = "refused by the clients" if args.out_of_range == "raise" else "clipped and counted by the clients"
        print(f"listening on {args.host}:{port} for {cfg.n} clients (threshold {cfg.threshold}, {mode}, {reg}); "
              f"inputs within [-{args.bound:g}, {args.bound:g}], values beyond {beyond}", flush=True)
        if args.port_file:
            _write(args.port_file, lambda p: Path(p).write_text(str(port)))
        return await server.run()

    # the output folders must exist before the session runs, not after its result is known
    for folder in {out.parent, summary_path.parent} | ({Path(args.ring_out).parent} if args.ring_out else set()):
        _write(folder, lambda p: Path(p).mkdir(parents=True, exist_ok=True))
    try:
        result = asyncio.run(main())
    except ProtocolAbort as exc:
        aborted = {"status": "aborted", "reason": exc.reason, "code": exc.code, "blamed": list(exc.blamed)}
        _write(summary_path, lambda p: p.write_text(json.dumps(aborted, indent=2)))
        print(f"secagg serve: session aborted: {exc.reason}", file=sys.stderr)
        return 1
    _write(out, lambda p: np.save(p, result.sum))
    if args.ring_out:
        _write(args.ring_out, lambda p: np.save(p, result.ring_sum))
    _write(summary_path, lambda p: p.write_text(json.dumps({"status": "ok", **result.summary()}, indent=2)))
    print(f"sum of {len(result.survivors)} survivors ({len(result.dropped)} dropped) written to {out}; "
          f"summary in {summary_path}", flush=True)
    return 0


# ---------------------------------------------------------------------- client
def run_client_cmd(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import ConfigurationError, InputError, InsecureParameterError
    from ..masking.params import ThreatModel
    from ..masking.policy import SecurityPolicy
    from ..transport.client import kill_self, participate
    from ..transport import load_allow_list, load_identity_key
    from ..transport.tls import client_context

    host, port = _parse_server(args.server)
    if args.insecure_plaintext and (args.ca or args.server_name):
        raise ConfigurationError("--insecure-plaintext contradicts --ca/--server-name: choose one")
    if not args.insecure_plaintext and not args.ca:
        if args.server_name:
            raise InputError("--server-name needs --ca (the CA file the server's certificate must chain to)")
        raise InsecureParameterError(
            "TLS needs --ca FILE, the CA certificate the server's certificate must chain to (for a self-signed "
            "server, its cert.pem); --insecure-plaintext runs without TLS")
    if args.key and args.insecure_open_registration:
        raise ConfigurationError("--insecure-open-registration contradicts --key: choose one")
    if not args.key and not args.insecure_open_registration:
        raise InsecureParameterError(
            "registration needs this client's identity key: --key FILE (secagg keygen makes one and prints the "
            "allow-list line); --insecure-open-registration registers with a throw-away key")
    signing_key = _load("--key", load_identity_key, args.key) if args.key else None
    pins = _load("--peers", load_allow_list, args.peers) if args.peers else None
    if args.input:
        try:
            inputs = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read --input {args.input}: {exc}") from None
        if inputs.ndim != 1:
            raise InputError(f"--input must hold a 1-D vector, {args.input} has shape {inputs.shape}")
    else:
        def inputs(dim, rng):  # the rounding generator stays unseeded: --seed only fixes this vector
            return np.random.default_rng(args.seed).uniform(-1.0, 1.0, size=dim)

    def on_welcome(uid, x, ring):
        if args.save_input:
            _write(args.save_input, lambda p: np.save(p, np.asarray(x, dtype=np.float64)))
        if args.save_ring:
            _write(args.save_ring, lambda p: np.save(p, ring))

    def on_registered(uid, n, count):
        print(f"client {uid}: registered with {args.server} ({count} of {n} clients); waiting for the session",
              flush=True)

    try:
        policy = SecurityPolicy(threat=ThreatModel(corrupt_fraction=args.corrupt_fraction),
                                min_threshold=args.min_threshold, min_degree=args.min_degree,
                                min_survivors=args.min_survivors)
    except ConfigurationError as exc:
        raise ConfigurationError(f"policy flags (--corrupt-fraction/--min-*): {exc}") from None
    ctx = _load("--ca", client_context, args.ca) if args.ca else None
    outcome = participate(
        host, port, inputs, ssl_context=ctx, server_hostname=args.server_name, signing_key=signing_key,
        requested_id=args.id,
        expected_directory=pins, insecure_plaintext=args.insecure_plaintext,
        insecure_open_registration=args.insecure_open_registration,
        accept_honest_but_curious=args.insecure_honest_but_curious,
        policy=policy,
        timeout=args.timeout, crash_at=args.crash_at, stall_at=args.stall_at, on_crash=lambda w: kill_self(),
        on_welcome=on_welcome, on_registered=on_registered,
    )
    head = f"client {outcome.id}: "
    if outcome.clipped:
        head += f"{outcome.clipped} input values clipped to the server's --bound; "
    if outcome.included:
        print(f"{head}session finished; {len(outcome.survivors)} survivors; my input is in the sum", flush=True)
        return 0
    if outcome.included is False:
        print(f"{head}my input is NOT in the sum: {outcome.reason}", flush=True)
        return 1
    print(f"{head}unknown whether my input is in the sum: {outcome.reason}", flush=True)
    return EXIT_UNKNOWN


# ---------------------------------------------------------------------- keys and certificates
def run_keygen(args: argparse.Namespace) -> int:
    from ..transport import allow_list_line, write_identity_key

    key = write_identity_key(args.out, overwrite=args.force)
    print(f"private key written to {args.out} (mode 0600; keep it on this client); add this line to the "
          "server's --clients-file:", file=sys.stderr)
    print(allow_list_line(args.id, key.public_bytes()), flush=True)
    return 0


def run_tls_cert(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError
    from ..transport.tls import write_self_signed

    hosts = args.host or ["localhost", "127.0.0.1"]
    try:
        cert, key = write_self_signed(args.out, hosts, days=args.days)
    except OSError as exc:
        raise ConfigurationError(f"cannot write into --out {args.out}: {exc.strerror or exc}") from None
    print(f"certificate {cert} (give it to clients as --ca), private key {key} (keep it on the server)")
    return 0


# ---------------------------------------------------------------------- stand-alone entry point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m secagg.commands.network``: these four commands only, with the flag
    checks and error handling of :func:`secagg.cli.main` (one line on stderr naming the
    flag, no traceback)."""
    from ..cli import Parser, annotate, run

    parser = Parser(prog="secagg", description="secure sum across processes or machines")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    register(commands, None)
    annotate(parser, "secagg")
    return run(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
