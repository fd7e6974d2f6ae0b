"""`secagg serve`, `secagg client` and `secagg tls-cert`: run one secure-sum session
(SecAgg, Bonawitz et al. CCS 2017 / SecAgg+, Bell et al. CCS 2020) over TCP or TLS
between processes or machines (see docs/deployment.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..masking.rounds import ROUNDS


def register(commands, demos) -> None:
    from ._args import POSITIVE_FLOAT, POSITIVE_INT, PORT, RING_BITS, SEED, int_in, out_dir, out_file

    s = commands.add_parser(
        "serve",
        help="run the aggregation server of one secure-sum session over TCP/TLS",
        description="Wait for --clients clients, run SecAgg (--graph complete) or SecAgg+ (--graph sparse) "
        "with per-round deadlines, write the float sum of the survivors' inputs to --out and a JSON "
        "summary (survivors, dropped clients, timings) next to it. Exits 1 with a message if the "
        "session aborts (fewer live clients than the threshold).",
    )
    s.add_argument("--clients", type=POSITIVE_INT, required=True, metavar="N", help="number of client ids in the session")
    s.add_argument("--threshold", type=POSITIVE_INT, metavar="T", help="Shamir threshold (default: just above half the share holders)")
    s.add_argument("--dim", type=POSITIVE_INT, required=True, metavar="D", help="vector length")
    s.add_argument("--port", type=PORT, required=True, metavar="P", help="TCP port (0: any free port, printed)")
    s.add_argument("--out", type=out_file, required=True, metavar="SUM.npy", help="where to write the float64 sum")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--clip", type=POSITIVE_FLOAT, default=1.0, help="coordinate bound clients clip to (default 1.0)")
    s.add_argument("--bits", type=RING_BITS, default=32, help="ring size in bits (default 32)")
    s.add_argument("--graph", choices=("complete", "sparse"), default="complete", help="SecAgg or SecAgg+ (default complete)")
    s.add_argument("--k", type=POSITIVE_INT, help="SecAgg+ graph degree (default: chosen from n)")
    s.add_argument("--deadline", type=POSITIVE_FLOAT, default=30.0, metavar="SECONDS", help="per-round deadline (default 30)")
    s.add_argument("--join-timeout", type=POSITIVE_FLOAT, default=120.0, metavar="SECONDS",
                   help="how long to wait for all clients to register (default 120)")
    s.add_argument("--hello-timeout", type=POSITIVE_FLOAT, default=10.0, metavar="SECONDS",
                   help="a new connection must register within this time (default 10)")
    s.add_argument("--max-connections", type=POSITIVE_INT, help="simultaneous connections (default 2N+16)")
    s.add_argument("--no-consistency-check", action="store_true",
                   help="honest-but-curious variant: skip the signed survivor-set round")
    s.add_argument("--allow-low-threshold", action="store_true", help="permit a threshold at or below half the holders")
    s.add_argument("--tls-cert", metavar="F", help="server certificate (PEM); enables TLS together with --tls-key")
    s.add_argument("--tls-key", metavar="F", help="server private key (PEM)")
    s.add_argument("--summary", type=out_file, metavar="FILE.json", help="summary JSON (default: --out with suffix .json)")
    s.add_argument("--ring-out", type=out_file, metavar="FILE.npy", help="also write the exact ring sum (uint32/uint64)")
    s.add_argument("--port-file", type=out_file, metavar="FILE", help="write the bound port number into FILE once listening")
    s.add_argument("--quiet", action="store_true", help="no progress log on stderr")
    s.set_defaults(func=run_serve)

    c = commands.add_parser(
        "client",
        help="join a secure-sum session as one client",
        description="Connect to `secagg serve`, register, and contribute --input (a .npy float vector of the "
        "session's length) or a --random vector. Exits 0 when the server reports the sum.",
    )
    c.add_argument("--server", required=True, metavar="HOST:PORT")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE.npy", help="float vector to contribute")
    src.add_argument("--random", action="store_true", help="contribute a uniform random vector in [-1, 1]^D")
    c.add_argument("--seed", type=SEED, help="seed of the random vector and of the stochastic rounding "
                   "(statistical randomness only; keys always come from the OS)")
    c.add_argument("--tls-ca", metavar="F", help="CA certificate (PEM) to verify the server; enables TLS")
    c.add_argument("--tls-server-name", metavar="NAME", help="host name expected in the server certificate")
    c.add_argument("--id", type=int_in(0), help="request this client id (refused if taken)")
    c.add_argument("--timeout", type=POSITIVE_FLOAT, default=300.0, metavar="SECONDS",
                   help="give up if the server is silent this long (default 300)")
    c.add_argument("--allow-low-threshold", action="store_true", help="accept a threshold at or below half the holders")
    c.add_argument("--save-input", type=out_file, metavar="FILE.npy", help="write the float vector contributed (useful with --random)")
    c.add_argument("--save-ring", type=out_file, metavar="FILE.npy", help="write the quantized ring vector contributed")
    c.add_argument("--crash-at", choices=ROUNDS, help="fault injection: SIGKILL this process when ROUND starts")
    c.add_argument("--stall-at", choices=ROUNDS, help="fault injection: stop answering (stay connected) at ROUND")
    c.set_defaults(func=run_client_cmd)

    g = commands.add_parser(
        "tls-cert",
        help="write a self-signed TLS certificate and key for `secagg serve --tls-cert/--tls-key`",
        description="Generate an ECDSA P-256 key and a self-signed certificate (its own CA: give cert.pem to "
        "clients as --tls-ca). For private deployments and demos; use your organisation's CA otherwise.",
    )
    g.add_argument("--out", type=out_dir, default="tls", help="folder for cert.pem and key.pem (default: tls)")
    g.add_argument("--host", action="append", help="DNS name or IP the server is reached at (repeatable; "
                   "default localhost and 127.0.0.1)")
    g.add_argument("--days", type=POSITIVE_INT, default=30, help="validity in days (default 30)")
    g.set_defaults(func=run_tls_cert)


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


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    import numpy as np

    from ..errors import ConfigurationError, ProtocolAbort
    from ..masking.config import MaskingConfig
    from ..transport.server import AggregationServer
    from ..transport.tls import server_context

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s serve: %(message)s", stream=sys.stderr)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigurationError("TLS needs both --tls-cert and --tls-key")
    cfg = MaskingConfig(
        n=args.clients, dim=args.dim, bits=args.bits, threshold=args.threshold, graph=args.graph, k=args.k,
        consistency_check=not args.no_consistency_check, allow_low_threshold=args.allow_low_threshold,
    )
    ctx = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    out = Path(args.out)
    summary_path = Path(args.summary) if args.summary else out.with_suffix(".json")
    server = AggregationServer(
        cfg, clip=args.clip, host=args.host, port=args.port, ssl_context=ctx, round_deadline=args.deadline,
        join_timeout=args.join_timeout, hello_timeout=args.hello_timeout, max_connections=args.max_connections,
    )

    async def main():
        try:
            port = await server.start()
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        print(f"listening on {args.host}:{port} for {cfg.n} clients (threshold {cfg.threshold}, "
              f"{'TLS' if ctx else 'plain TCP'})", flush=True)
        if args.port_file:
            _write(args.port_file, lambda p: Path(p).write_text(str(port)))
        return await server.run()

    # the output folders must exist before the session runs, not after its result is known
    for folder in {out.parent, summary_path.parent} | ({Path(args.ring_out).parent} if args.ring_out else set()):
        _write(folder, lambda p: Path(p).mkdir(parents=True, exist_ok=True))
    try:
        result = asyncio.run(main())
    except ProtocolAbort as exc:
        _write(summary_path, lambda p: p.write_text(json.dumps({"status": "aborted", "reason": exc.reason}, indent=2)))
        print(f"secagg serve: session aborted: {exc.reason}", file=sys.stderr)
        return 1
    _write(out, lambda p: np.save(p, result.sum))
    if args.ring_out:
        _write(args.ring_out, lambda p: np.save(p, result.ring_sum))
    _write(summary_path, lambda p: p.write_text(json.dumps({"status": "ok", **result.summary()}, indent=2)))
    print(f"sum of {len(result.survivors)} survivors ({len(result.dropped)} dropped) written to {out}; "
          f"summary in {summary_path}", flush=True)
    return 0


def run_client_cmd(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import InputError
    from ..transport.client import kill_self, participate
    from ..transport.tls import client_context

    host, port = _parse_server(args.server)
    if args.tls_server_name and not args.tls_ca:
        raise InputError("--tls-server-name needs --tls-ca (without a CA the client would not use TLS)")
    if args.input:
        try:
            inputs = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read --input {args.input}: {exc}") from None
    else:
        def inputs(dim, rng):
            return rng.uniform(-1.0, 1.0, size=dim)

    def on_welcome(uid, x, ring):
        if args.save_input:
            np.save(args.save_input, np.asarray(x, dtype=np.float64))
        if args.save_ring:
            np.save(args.save_ring, ring)

    ctx = client_context(args.tls_ca) if args.tls_ca else None
    outcome = participate(
        host, port, inputs, ssl_context=ctx, server_hostname=args.tls_server_name,
        rng=np.random.default_rng(args.seed) if args.seed is not None else None,
        requested_id=args.id, allow_low_threshold=args.allow_low_threshold, timeout=args.timeout,
        crash_at=args.crash_at, stall_at=args.stall_at, on_crash=lambda w: kill_self(), on_welcome=on_welcome,
    )
    print(f"client {outcome.id}: session finished; {len(outcome.survivors)} survivors; my input "
          f"{'is' if outcome.included else 'is NOT'} in the sum", flush=True)
    return 0


def run_tls_cert(args: argparse.Namespace) -> int:
    from ..transport.tls import write_self_signed

    hosts = args.host or ["localhost", "127.0.0.1"]
    cert, key = write_self_signed(args.out, hosts, days=args.days)
    print(f"certificate {cert} (give it to clients as --tls-ca), private key {key} (keep it on the server)")
    return 0
