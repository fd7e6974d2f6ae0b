"""`secagg demo paillier`: packed Paillier summation (Paillier 1999; BatchCrypt-style packing,
Zhang et al. 2020; DJN-style fast obfuscation) next to scalar python-paillier.

Shows what each party sends (bytes), the packing layout (slots per ciphertext, slot
bits), the decrypted sum against the plain sum, and timings against scalar ``phe`` on a
small sample (scaled to the vector length).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def register(commands, demos) -> None:
    p = demos.add_parser(
        "paillier",
        help="packed Paillier vector summation vs scalar python-paillier",
        description="Clients encrypt packed vectors, the server multiplies ciphertexts, the key holder "
        "decrypts only the sum. Prints bytes per party, the packing layout, the error against the plain "
        "sum, and timings against scalar phe (sampled).",
    )
    from ..quantize import OUT_OF_RANGE_POLICIES
    from ._args import POSITIVE_FLOAT, POSITIVE_INT, RING_BITS, SEED, int_in, out_dir

    p.add_argument("--clients", type=POSITIVE_INT, default=10, help="number of clients (default 10)")
    p.add_argument("--dim", type=POSITIVE_INT, default=2000, help="vector length (default 2000)")
    p.add_argument("--key-bits", type=int_in(64, 16384), default=2048,
                   help="Paillier modulus bits (default 2048; library default 3072)")
    p.add_argument("--bits", type=RING_BITS, default=16, help="quantizer bits per value (default 16)")
    p.add_argument("--bound", type=POSITIVE_FLOAT, default=1.0,
                   help="per-coordinate bound of the encoding; inputs are uniform in [-1, 1] (default 1.0)")
    p.add_argument("--out-of-range", choices=OUT_OF_RANGE_POLICIES, default="raise",
                   help="values beyond --bound: refuse them, or clip them and count them (default raise)")
    p.add_argument("--obfuscation", choices=("full", "fast"), default="fast", help="obfuscator (default fast)")
    p.add_argument("--phe-sample", type=int_in(2), default=10,
                   help="values encrypted with scalar phe for timing (default 10)")
    p.add_argument("--allow-insecure", action="store_true", help="permit --key-bits below 2048 (testing only)")
    p.add_argument("--seed", type=SEED, default=None, help="seed for the inputs and rounding")
    p.add_argument("--out", type=out_dir, default=argparse.SUPPRESS, metavar="DIR",
                   help="also write paillier_demo.json into DIR (default: print only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import paillier as P
    from ..errors import InputError
    from ..quantize import Quantizer

    n, d = args.clients, args.dim
    if n < 1 or d < 1 or args.phe_sample < 2:
        raise InputError("--clients and --dim must be >= 1 and --phe-sample >= 2")
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.0, 1.0, size=(n, d))
    q = Quantizer(args.bound, num_clients=n, bits=args.bits, out_of_range=args.out_of_range)
    clipped = int(q.count_out_of_range(x).sum())
    if args.out_of_range == "raise" and clipped:
        q.quantize(x)  # refuses with the count and the bound that would hold the inputs

    t0 = time.perf_counter()
    pk, sk = P.generate_keypair(args.key_bits, allow_insecure=args.allow_insecure)
    t_keygen = time.perf_counter() - t0
    pk_bytes = P.public_key_to_bytes(pk)
    enc = P.Encryptor(pk, obfuscation=args.obfuscation, allow_insecure=args.allow_insecure)
    t0 = time.perf_counter()
    enc.obfuscators(1)  # one-off set-up (the fixed-base table for "fast")
    t_setup = time.perf_counter() - t0

    payloads, t_clients = [], []
    for row in x:
        t0 = time.perf_counter()
        payloads.append(P.encrypt_vector(pk, row, q, rng=rng, encryptor=enc, allow_insecure=args.allow_insecure).to_bytes())
        t_clients.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    received = [P.EncryptedVector.from_bytes(b, pk, quantizer=q, dim=d, allow_insecure=args.allow_insecure)
                for b in payloads]  # each payload is one summand: the server counts, the bytes do not
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    total_ev = P.sum(received)
    t_add = time.perf_counter() - t0
    to_key_holder = total_ev.to_bytes()
    t_server = t_parse + t_add
    t0 = time.perf_counter()
    total = P.decrypt_vector(
        sk, P.EncryptedVector.from_bytes(to_key_holder, pk, count=len(received), allow_insecure=args.allow_insecure)
    )
    t_decrypt = time.perf_counter() - t0
    plain = np.clip(x, -q.bound, q.bound).sum(axis=0)
    err = float(np.abs(total - plain).max())

    # scalar phe on a sample, scaled to d values per client
    sample = x[0, : args.phe_sample].tolist() if d >= args.phe_sample else rng.uniform(-1, 1, args.phe_sample).tolist()
    t0 = time.perf_counter()
    cts = [pk.encrypt(v) for v in sample]
    phe_enc = (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    _ = [a + b for a, b in zip(cts, cts[1:])]
    phe_add = (time.perf_counter() - t0) / (len(cts) - 1)
    t0 = time.perf_counter()
    _ = [sk.decrypt(c) for c in cts]
    phe_dec = (time.perf_counter() - t0) / len(cts)
    ct_bytes = total_ev.ciphertext_bytes

    layout = total_ev.layout
    client_s = float(np.median(t_clients))
    print(
        f"Packed Paillier: n={n} clients, d={d}, {int(pk.n).bit_length()}-bit key "
        f"(generated in {t_keygen:.2f} s), obfuscation={args.obfuscation}"
    )
    print(
        f"packing: {q.bits}-bit quantizer (q_max={q.q_max}, resolution {q.resolution:.3g}) -> "
        f"{layout.slot_bits}-bit slots (room for {n} summands), {layout.slots} slots per ciphertext, "
        f"{layout.num_ciphertexts} ciphertexts of {ct_bytes} bytes per vector"
    )
    print(
        f"layout of one plaintext: m = u_0 + u_1*2^{layout.slot_bits} + ... + "
        f"u_{layout.slots - 1}*2^{layout.slot_bits * (layout.slots - 1)}  (u_j = value_j + q_max)\n"
    )
    head = f"{'party':<28} {'sends (bytes)':>14} {'to':<12} {'seconds':>10}"
    print(head)
    print("-" * len(head))
    print(f"{'key holder':<28} {len(pk_bytes):>14,} {'each client':<12} {t_keygen:>10.3f}")
    print(f"{'each client (median)':<28} {len(payloads[0]):>14,} {'server':<12} {client_s:>10.4f}")
    print(f"{'server (sum of ' + str(n) + ')':<28} {len(to_key_holder):>14,} {'key holder':<12} {t_server:>10.4f}")
    print(f"{'key holder (decrypt)':<28} {8 * d:>14,} {'server':<12} {t_decrypt:>10.4f}")
    print(
        f"\nexpansion: {len(payloads[0]) / (4 * d):.3f}x the float32 vector (phe: "
        f"{ct_bytes * d / (4 * d):.0f}x at fixed width)"
    )
    print(f"values clipped to the bound {q.bound:g}: {clipped} of {n * d} (out-of-range policy: {q.out_of_range})")
    print(
        f"decrypted sum vs plain sum{' (clipped)' if clipped else ''}: max |error| = {err:.3g} "
        f"(bound n x resolution = {n * q.resolution:.3g}; clients' inputs are never decrypted on their own)"
    )
    print(f"one-off encryptor set-up: {t_setup:.3f} s per client per key\n")
    head = f"{'per element':<14} {'packed (us)':>12} {'phe (us)':>12} {'speed-up':>10}"
    print(head)
    print("-" * len(head))
    rows = {
        "encrypt": (client_s / d, phe_enc),
        "add": (t_add / (max(n - 1, 1) * d), phe_add),
        "decrypt": (t_decrypt / d, phe_dec),
    }
    for name, (ours, theirs) in rows.items():
        print(f"{name:<14} {1e6 * ours:>12.3f} {1e6 * theirs:>12.1f} {theirs / ours:>9.0f}x")
    print(f"(phe timed on {len(sample)} values; the server also spent {t_parse:.4f} s parsing {n} payloads)")

    report = {
        "clients": n, "dim": d, "key_bits": int(pk.n).bit_length(), "obfuscation": args.obfuscation,
        "quantizer_bits": q.bits, "slot_bits": layout.slot_bits, "slots_per_ciphertext": layout.slots,
        "ciphertexts": layout.num_ciphertexts, "bytes_public_key": len(pk_bytes),
        "bytes_per_client": len(payloads[0]), "bytes_to_key_holder": len(to_key_holder),
        "expansion": len(payloads[0]) / (4 * d), "max_abs_error": err, "error_bound": n * q.resolution,
        "bound": q.bound, "out_of_range": q.out_of_range, "clipped": clipped,
        "seconds": {"keygen": t_keygen, "client_median": client_s, "server": t_server, "server_parse": t_parse,
                    "server_add": t_add, "decrypt": t_decrypt,
                    "setup": t_setup},
        "per_element_seconds": {k: {"packed": a, "phe": b, "speedup": b / a} for k, (a, b) in rows.items()},
    }
    if getattr(args, "out", None):  # only where the user asked (secagg demo --out DIR paillier, or --out after it)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "paillier_demo.json").write_text(json.dumps(report, indent=2))
        print(f"numbers written to {out / 'paillier_demo.json'}")
    return 0 if err <= n * q.resolution else 1
