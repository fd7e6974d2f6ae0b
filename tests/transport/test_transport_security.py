"""Attacks on the network path, each tried for real over loopback sockets: a malicious
server that downgrades the session, peers that squat ids, replay or relay registration
signatures, a client with the wrong vector length, peers that are not secagg at all or
speak TLS when the other side does not, and the identity files' rules."""

from __future__ import annotations

import asyncio
import os
import stat

import numpy as np
import pytest
from transport_helpers import (
    ALLOW,
    CERT,
    HOST,
    SKS,
    allow,
    fake_server_register,
    HBC_CONFIG,
    hangs_up_after_masked_input,
    hbc_fields,
    raw_register,
    read_control,
    ring_vectors,
    run_session,
    session_key_of,
    welcome_with,
)

from secagg import keys, prg, shamir
from secagg.errors import (
    ConfigurationError,
    DecodeError,
    InsecureParameterError,
    IntegrityError,
    ProtocolAbort,
    ProtocolViolation,
)
from secagg.masking import MaskingConfig
from secagg.masking.client import SHARE_LIMBS, SHARE_ROUND
from secagg.masking.config import PAIR_MASK_LABEL, SELF_MASK_LABEL, pair_info, pair_keys
from secagg.masking._messages import (
    AdvertiseKeys,
    ForwardShares,
    KeysBroadcast,
    MaskedInput,
    ShareKeys,
    StartSession,
    decode_message,
)
from secagg.transport import (
    AggregationServer,
    allow_list_line,
    load_allow_list,
    load_identity_key,
    parse_allow_list,
    run_client,
    write_identity_key,
)
from secagg.transport._framing import (
    KIND_ABORT,
    KIND_AUTH,
    KIND_HELLO,
    KIND_PROTOCOL,
    KIND_WELCOME,
    TRANSPORT_VERSION,
    control_payload,
    encode_frame,
    read_frame,
    split_payload,
)
from secagg.transport._identity import registration_payload
from secagg.transport.tls import client_context

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- the downgrade (issue 12, attack 1)
def _downgrade_welcome(hello: dict, session: bytes) -> dict:
    """What a malicious server announces: the honest-but-curious variant, and a directory that
    matches the client's pins exactly (the real clients' keys) so pinning does not help."""
    return {"v": TRANSPORT_VERSION, "id": 0, "n": 3, "dim": 4, "bits": 32, "graph": "complete", "k": 2,
            **hbc_fields(),
            "graph_seed": "00" * 32, "bound": None, "max_frame": 1 << 16,
            "session": session.hex(), "registration": "allow-list",
            "directory": {str(u): ALLOW[u].hex() for u in range(3)}}


async def _malicious_server(reader, writer, loot: dict) -> None:
    """Registers client 0, announces the downgrade, and plays clients 1 and 2 itself with its
    own X25519 keys. If the client goes along, the server decrypts both share ciphertexts,
    rebuilds the self-mask seed and removes every mask: the client's input, in one session."""
    hello = await fake_server_register(reader, writer)
    session = hello["session"]
    writer.write(encode_frame(KIND_WELCOME, control_payload(_downgrade_welcome(hello, session))))
    writer.write(encode_frame(KIND_PROTOCOL, StartSession(session, 0).to_bytes()))
    await writer.drain()
    try:
        kind, body = split_payload(await read_frame(reader, 1 << 20))
    except (asyncio.IncompleteReadError, ConnectionError):
        loot["protocol_frames"] = 0  # the client left without sending anything
        return
    loot["protocol_frames"] = 1
    adv = decode_message(body)
    assert isinstance(adv, AdvertiseKeys) and adv.signature == b""
    mine = {v: (keys.AgreementKey.generate(), keys.AgreementKey.generate()) for v in (1, 2)}
    entries = tuple((v, c.public_bytes(), s.public_bytes(), b"") for v, (c, s) in mine.items())
    # the session identity client 0 will compute from the keys it is shown (the server chose them)
    R, proof = session_key_of(HBC_CONFIG, session, {0: (adv.c_pk, adv.s_pk),
                                                     **{v: (c.public_bytes(), s.public_bytes()) for v, (c, s) in mine.items()}})
    writer.write(encode_frame(KIND_PROTOCOL, KeysBroadcast(session, 0, entries, proof).to_bytes()))
    await writer.drain()
    _, body = split_payload(await read_frame(reader, 1 << 20))
    shares_msg = decode_message(body)
    assert isinstance(shares_msg, ShareKeys)
    enc = {v: pair_keys(c.exchange(adv.c_pk), R, 0, v, False)[0]
           for v, (c, _) in mine.items()}
    stolen = {}
    for v, ct in shares_msg.ciphertexts:  # the server reads the shares meant for "clients" 1 and 2
        ad = keys.associated_data(session=R, round=SHARE_ROUND, sender=0, recipient=v)
        stolen[v] = shamir.decode_share_values(keys.aead_decrypt(enc[v], ct, ad), 2, SHARE_LIMBS)
    # forward well-formed shares "from" 1 and 2 so the client sends its masked input
    dummy = shamir.split_batch([os.urandom(32), os.urandom(32)], 2, [1, 2, 3])
    cts = tuple(
        (v, keys.aead_encrypt(enc[v], shamir.encode_share_values(dummy[v]),
                              keys.associated_data(session=R, round=SHARE_ROUND, sender=v, recipient=0)))
        for v in (1, 2)
    )
    writer.write(encode_frame(KIND_PROTOCOL, ForwardShares(session, 0, cts).to_bytes()))
    await writer.drain()
    _, body = split_payload(await read_frame(reader, 1 << 20))
    masked = decode_message(body)
    assert isinstance(masked, MaskedInput)
    b = bytes(shamir.combine_batch([v + 1 for v in (1, 2)], np.stack([stolen[v][:1] for v in (1, 2)]), 32,
                                   threshold=2)[0])
    y = masked.vector.copy()
    prg.add_mask(y, b, -1, label=SELF_MASK_LABEL)
    for v, (_, s) in mine.items():
        seed = keys.hkdf(s.exchange(adv.s_pk), info=pair_info(R, 0, v, b"mask"))
        prg.add_mask(y, seed, -1 if 0 < v else 1, label=PAIR_MASK_LABEL)
    loot["unmasked"] = y
    writer.close()


@pytest.mark.parametrize("opt_out", [False, True])
def test_malicious_server_downgrade_is_refused_before_any_protocol_message(opt_out):
    """Issue 12, attack 1, over loopback: ``consistency_check: false`` in the WELCOME and the
    server's own X25519 keys for every neighbour. The client refuses before it sends a single
    protocol message. With the explicit opt-out the same server recovers the client's input
    exactly, which is what the refusal prevents."""
    loot: dict = {}
    contributed: dict = {}
    vec = np.random.default_rng(3).integers(0, 2**32, size=4, dtype=np.uint32)

    async def scenario():
        srv = await asyncio.start_server(lambda r, w: _malicious_server(r, w, loot), HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return (await asyncio.gather(run_client(
                HOST, port, vec, signing_key=SKS[0], requested_id=0, expected_directory=allow(3),
                insecure_plaintext=True, accept_honest_but_curious=opt_out, timeout=5,
                on_welcome=lambda u, x, ring: contributed.setdefault("ring", ring),
            ), return_exceptions=True))[0]
        finally:
            srv.close()

    out = asyncio.run(scenario())
    if not opt_out:
        assert isinstance(out, InsecureParameterError), repr(out)
        assert "consistency check" in str(out) and "--insecure-honest-but-curious" in str(out)
        assert loot["protocol_frames"] == 0 and "ring" not in contributed
    else:  # the attack the default prevents: the input comes out exactly
        np.testing.assert_array_equal(loot["unmasked"], contributed["ring"])
        np.testing.assert_array_equal(loot["unmasked"], vec)


async def _client_vs_welcome(changes: dict, client_kw=None, then=()):
    """One real client against a server that registers it and sends a WELCOME with ``changes``
    (then the frames in ``then``). Returns the client's outcome or exception and whether it
    sent any protocol frame."""
    seen = {"protocol": 0}

    async def server(reader, writer):
        hello = await fake_server_register(reader, writer)
        writer.write(encode_frame(KIND_WELCOME, control_payload(welcome_with(hello, **changes))))
        for frame in then:
            writer.write(frame(hello["session"]))
        await writer.drain()
        try:
            while True:
                kind, _ = split_payload(await asyncio.wait_for(read_frame(reader, 1 << 20), 5))
                seen["protocol"] += kind == KIND_PROTOCOL
        except Exception:
            pass
        writer.close()

    srv = await asyncio.start_server(server, HOST, 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        kw = dict(signing_key=SKS[0], requested_id=0, insecure_plaintext=True, timeout=5, **(client_kw or {}))
        out = (await asyncio.gather(run_client(HOST, port, np.zeros(4, dtype=np.uint32), **kw),
                                    return_exceptions=True))[0]
    finally:
        srv.close()
    return out, seen["protocol"]


@pytest.mark.parametrize(
    "changes,error,match",
    [
        ({"threshold": 1}, InsecureParameterError, "policy rule 'threat model'"),
        ({"n": 20, "graph": "sparse", "k": 2, "threshold": 2}, InsecureParameterError, "policy rule 'threat model'"),
        ({"min_survivors": 2}, InsecureParameterError, "policy rule 'minimum survivors'"),
        ({"directory": {"0": ALLOW[0].hex(), "1": ALLOW[1].hex(), "2": SKS[5].public_bytes().hex()}},
         IntegrityError, "pinned"),  # a key the allow-list does not give id 2 (a Sybil)
        ({"directory": {"1": ALLOW[1].hex(), "2": ALLOW[2].hex()}}, ProtocolViolation, "own key"),
        ({"session": "ab" * 16}, ProtocolViolation, "another id or session"),
        ({"id": 1}, ProtocolViolation, "another id or session"),
        # the CHALLENGE announced ring vectors (bound None): a WELCOME may not change the encoding
        ({"bound": 100.0}, ProtocolViolation, "another bound"),
        ({"out_of_range": "clip"}, ProtocolViolation, "another bound"),
        ({"out_of_range": "wrap"}, DecodeError, "out_of_range 'wrap' is not valid"),
    ],
)
def test_client_refuses_a_welcome_weaker_than_its_policy(changes, error, match):
    """Each rule the client enforces against the server's announcement, before it sends
    anything: threshold, SecAgg+ degree, pinned directory, own key, session and id."""
    if match == "own key":
        match = "does not list this client's key"
    from secagg.masking import SecurityPolicy

    kw = {"expected_directory": allow(3)}
    if "min_survivors" in changes:  # a client whose DP guarantee needs all 3 contributions
        kw["policy"] = SecurityPolicy(min_survivors=3)
    out, sent = asyncio.run(_client_vs_welcome(changes, kw))
    assert isinstance(out, error), repr(out)
    assert match in str(out)
    assert sent == 0


def test_protocol_message_of_another_session_is_refused():
    other = bytes(range(100, 116))
    out, sent = asyncio.run(_client_vs_welcome(
        {}, then=[lambda s: encode_frame(KIND_PROTOCOL, StartSession(other, 0).to_bytes())]))
    assert isinstance(out, ProtocolViolation) and "another session" in str(out)
    assert sent == 0


def test_client_refuses_a_server_with_open_registration_unless_told():
    async def open_server(reader, writer):
        await fake_server_register(reader, writer, registration="open")
        await asyncio.sleep(0.5)
        writer.close()

    async def scenario(flag):
        srv = await asyncio.start_server(open_server, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return (await asyncio.gather(run_client(
                HOST, port, np.zeros(4), signing_key=SKS[0], insecure_plaintext=True, timeout=2,
                insecure_open_registration=flag), return_exceptions=True))[0]
        finally:
            srv.close()

    refused = asyncio.run(scenario(False))
    assert isinstance(refused, InsecureParameterError) and "--insecure-open-registration" in str(refused)
    went_on = asyncio.run(scenario(True))  # registered; the fake server then hangs up before the session
    assert isinstance(went_on, ProtocolAbort) and "closed" in str(went_on)


# ---------------------------------------------------------------- squatting and forged registrations
def test_squatting_an_id_fails_and_the_real_client_gets_it():
    """An attacker tries to take client 2's id before client 2 connects: with its own key
    (not on the allow-list), with client 2's public key but no private key, with a
    signature replayed from another connection, and with one made for another server. All
    are refused with the reason; client 2 then registers and its input is in the sum."""
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4, seed=9)

    async def squatter(port):
        replies = {}
        _, w, kind, reply = await raw_register(port, 2, key=keys.SigningKey.generate())
        replies["own key"] = (kind, reply)
        w.close()
        _, w, kind, reply = await raw_register(port, 2, key=SKS[2], sign_with=keys.SigningKey.generate())
        replies["victim's public key"] = (kind, reply)
        w.close()
        _, w, kind, reply = await raw_register(port, 2, key=SKS[2], cert_sha=bytes(32))
        replies["relayed"] = (kind, reply)
        w.close()
        # replay: a valid signature over another connection's nonce
        r1, w1 = await asyncio.open_connection(HOST, port)
        r2, w2 = await asyncio.open_connection(HOST, port)
        hello = {"v": TRANSPORT_VERSION, "verify_key": SKS[2].public_bytes().hex(), "id": 2, "dim": None}
        for w in (w1, w2):
            w.write(encode_frame(KIND_HELLO, control_payload(hello)))
            await w.drain()
        _, ch1 = await read_control(r1)
        _, ch2 = await read_control(r2)
        assert ch1["nonce"] != ch2["nonce"] and ch1["session"] == ch2["session"]
        captured = SKS[2].sign(registration_payload(bytes.fromhex(ch1["session"]), bytes.fromhex(ch1["nonce"]), 2,
                                                    SKS[2].public_bytes(), None))
        w2.write(encode_frame(KIND_AUTH, control_payload({"signature": captured.hex()})))
        await w2.drain()
        replies["replayed"] = await read_control(r2)
        w1.close()
        w2.close()
        return replies

    res, outs, replies = asyncio.run(run_session(cfg, vecs, adversary=squatter, head_start=1.0, plain=True))
    assert not isinstance(replies, BaseException), replies
    for what, (kind, reply) in replies.items():
        assert kind == KIND_ABORT, what
    assert replies["own key"][1]["code"] == "not-allowed" and "allow-list" in replies["own key"][1]["reason"]
    for what in ("victim's public key", "relayed", "replayed"):
        assert replies[what][1]["code"] == "bad-signature", what
    assert not isinstance(res, BaseException), res
    assert res.survivors == [0, 1, 2] and outs[2].included is True
    assert res.events["not_on_allow_list"] == 1 and res.events["bad_signatures"] == 3


def test_with_open_registration_anyone_can_squat():
    """What the allow-list prevents: with the insecure opt-outs an attacker takes id 2 first,
    and the real client 2 is told its id is taken."""
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4, seed=10)

    async def squatter(port):
        return await raw_register(port, 2, key=keys.SigningKey.generate(), wait=False)

    opt_out = {u: {"insecure_open_registration": True, "signing_key": None} for u in range(n)}
    res, outs, adv = asyncio.run(run_session(
        cfg, vecs, adversary=squatter, head_start=0.5, plain=True, client_kw=opt_out,
        server_kw={"allow_list": None, "insecure_open_registration": True, "join_timeout": 2.0,
                   "round_deadline": 1.0}))
    assert isinstance(outs[2], ProtocolAbort) and "id 2 is already taken" in str(outs[2])


def test_a_client_that_is_not_on_the_allow_list_is_told_why():
    n = 3
    cfg = MaskingConfig(n=n, dim=4)
    vecs = ring_vectors(n, 4, seed=11)
    stranger = {2: {"signing_key": keys.SigningKey.generate()}}
    res, outs, _ = asyncio.run(run_session(cfg, vecs, client_kw=stranger, server_kw={"join_timeout": 2.0}))
    assert isinstance(outs[2], ProtocolAbort)
    assert "not on the server's allow-list" in str(outs[2]) and "refused to register" in str(outs[2])


# ---------------------------------------------------------------- failing fast, saying why
def test_wrong_vector_length_is_refused_at_registration_not_after_the_join_timeout():
    """Issue 14: the client learns at once (while the server is still waiting for clients),
    and the server logs why."""
    cfg = MaskingConfig(n=3, dim=4)

    async def scenario():
        srv = AggregationServer(cfg, bound=1.0, join_timeout=30.0, hello_timeout=5.0, allow_list=allow(3),
                                insecure_plaintext=True)
        port = await srv.start()
        task = asyncio.create_task(srv.run())
        out = (await asyncio.gather(run_client(HOST, port, np.zeros(5), signing_key=SKS[0], insecure_plaintext=True,
                                               timeout=20), return_exceptions=True))[0]
        still_waiting = not srv._started and not task.done()
        refused = srv._counters.values["refused_hellos"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await srv.aclose()
        return out, still_waiting, refused

    out, still_waiting, refused = asyncio.run(scenario())
    assert isinstance(out, ProtocolAbort)
    assert "vectors of length 4" in str(out) and "length 5" in str(out)
    assert still_waiting and refused == 1


def test_a_client_pointed_at_an_http_server_says_so():
    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def silent(reader, writer):
        await asyncio.sleep(3)
        writer.close()

    async def scenario(handler):
        srv = await asyncio.start_server(handler, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return (await asyncio.gather(run_client(HOST, port, np.zeros(4), signing_key=SKS[0],
                                                    insecure_plaintext=True, handshake_timeout=0.5),
                                         return_exceptions=True))[0]
        finally:
            srv.close()

    out = asyncio.run(scenario(http))
    assert isinstance(out, ProtocolAbort)
    assert "not a secagg server" in str(out) and "HTTP/1.1 400 Bad Request" in str(out)
    assert "GB" not in str(out) and "frame" not in str(out)
    quiet = asyncio.run(scenario(silent))
    assert isinstance(quiet, ProtocolAbort) and "did not answer" in str(quiet)


def test_tls_client_against_a_plain_server_is_told_to_match_it():
    """The other direction of the TLS/plain mismatch: the plain server's protocol_version alert
    becomes a message naming --insecure-plaintext; a plain non-secagg service is named as such."""
    cfg = MaskingConfig(n=3, dim=4)
    vecs = ring_vectors(3, 4)

    async def tls_client(port):
        return (await asyncio.gather(run_client(HOST, port, vecs[0], ssl_context=client_context(CERT),
                                                signing_key=SKS[0], timeout=5), return_exceptions=True))[0]

    res, outs, adv = asyncio.run(run_session(cfg, vecs, adversary=tls_client, plain=True))
    assert isinstance(adv, ProtocolAbort) and "--insecure-plaintext" in str(adv)
    assert res.events["tls_mismatches"] == 1 and res.survivors == [0, 1, 2]

    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        srv = await asyncio.start_server(http, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return (await asyncio.gather(run_client(HOST, port, vecs[0], ssl_context=client_context(CERT),
                                                    signing_key=SKS[0], timeout=5), return_exceptions=True))[0]
        finally:
            srv.close()

    out = asyncio.run(scenario())
    assert isinstance(out, ProtocolAbort) and "does not speak TLS" in str(out)


def test_connection_lost_after_the_masked_input_is_unknown_not_excluded():
    """A client whose connection ends after it sent its masked input cannot know whether the
    server will use it: it says "unknown" (included is None), never "not in the sum"."""
    async def scenario():
        srv = await asyncio.start_server(hangs_up_after_masked_input, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return (await asyncio.gather(run_client(
                HOST, port, np.zeros(4), signing_key=SKS[0], insecure_plaintext=True, timeout=5,
                accept_honest_but_curious=True), return_exceptions=True))[0]
        finally:
            srv.close()

    out = asyncio.run(scenario())
    assert not isinstance(out, BaseException), repr(out)
    assert out.included is None and out.inclusion == "unknown" and out.status == "connection lost"
    assert "after this client sent its masked input" in out.reason


# ---------------------------------------------------------------- secure by default (API)
def test_the_api_refuses_plaintext_and_open_registration_without_the_flags():
    cfg = MaskingConfig(n=3, dim=4)
    with pytest.raises(InsecureParameterError, match="insecure_plaintext"):
        AggregationServer(cfg, allow_list=allow(3))
    with pytest.raises(InsecureParameterError, match="insecure_open_registration"):
        AggregationServer(cfg, insecure_plaintext=True)
    with pytest.raises(ConfigurationError, match="outside"):
        AggregationServer(cfg, insecure_plaintext=True, allow_list={0: ALLOW[0], 7: ALLOW[7]})
    with pytest.raises(ConfigurationError, match="0..65535"):
        AggregationServer(cfg, insecure_plaintext=True, allow_list=allow(3), port=70000)
    with pytest.raises(InsecureParameterError, match="insecure_plaintext"):
        asyncio.run(run_client(HOST, 9, np.zeros(4), signing_key=SKS[0]))
    with pytest.raises(InsecureParameterError, match="insecure_open_registration"):
        asyncio.run(run_client(HOST, 9, np.zeros(4), insecure_plaintext=True))


# ---------------------------------------------------------------- identity files
def test_identity_key_file_is_private_and_never_overwritten(tmp_path):
    path = tmp_path / "keys" / "client0.key"
    key = write_identity_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert load_identity_key(path).public_bytes() == key.public_bytes()
    with pytest.raises(ConfigurationError, match="already exists"):
        write_identity_key(path)
    assert load_identity_key(path).public_bytes() == key.public_bytes()  # untouched
    os.chmod(path, 0o644)
    with pytest.raises(InsecureParameterError, match="chmod 600"):
        load_identity_key(path)
    write_identity_key(path, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (tmp_path / "other.pem").write_text("not a key")
    os.chmod(tmp_path / "other.pem", 0o600)
    with pytest.raises(ConfigurationError):
        load_identity_key(tmp_path / "other.pem")


def test_allow_list_format():
    k0, k1 = ALLOW[0].hex(), ALLOW[1].hex()
    text = f"# the clients\n\n0 {k0}   # alice\n1 {k1}\n"
    assert parse_allow_list(text) == {0: ALLOW[0], 1: ALLOW[1]}
    assert parse_allow_list(allow_list_line(4, ALLOW[4])) == {4: ALLOW[4]}
    for bad, match in [
        (f"0 {k0}\n0 {k1}", "line 2: id 0 is listed twice"),
        (f"0 {k0}\n1 {k0}", "already listed for id 0"),
        ("0 abc", "64 hex digits"),
        (f"x {k0}", "expected '<id> <public key hex>'"),
        (f"0 {k0} extra", "expected"),
        ("# nothing\n", "no client"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            parse_allow_list(bad, source="clients.txt")


def test_allow_list_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read the allow-list"):
        load_allow_list(tmp_path / "missing.txt")
    (tmp_path / "c.txt").write_text(f"0 {ALLOW[0].hex()}\n")
    assert load_allow_list(tmp_path / "c.txt") == {0: ALLOW[0]}
    (tmp_path / "bad.txt").write_text("0 zz\n")
    with pytest.raises(ConfigurationError, match="bad.txt, line 1"):
        load_allow_list(tmp_path / "bad.txt")


def test_registration_signature_binds_every_field():
    """Changing any bound field changes the signed bytes (so a signature for one session,
    nonce, id, key or server certificate does not verify for another)."""
    base = dict(session=bytes(16), nonce=bytes(32), uid=1, verify_key=ALLOW[1], server_certificate=bytes(32))
    ref = registration_payload(**base)
    for field, other in [("session", bytes([1]) * 16), ("nonce", bytes([1]) * 32), ("uid", 2), ("uid", None),
                         ("verify_key", ALLOW[2]), ("server_certificate", bytes([1]) * 32),
                         ("server_certificate", None)]:
        assert registration_payload(**{**base, field: other}) != ref, field
    sig = SKS[1].sign(ref)
    keys.verify_signature(ALLOW[1], ref, sig)
    with pytest.raises(IntegrityError):
        keys.verify_signature(ALLOW[1], registration_payload(**{**base, "nonce": bytes([2]) * 32}), sig)
    with pytest.raises(DecodeError):
        registration_payload(**{**base, "nonce": bytes(5)})


def test_tls_server_waits_for_a_fragmented_first_segment():
    """The TLS server decides what a peer speaks from its first bytes; a first segment that
    arrives in pieces is still recognized (here a plain secagg HELLO, told to use TLS)."""
    cfg = MaskingConfig(n=3, dim=4)
    vecs = ring_vectors(3, 4)
    hello = encode_frame(KIND_HELLO, control_payload({"v": TRANSPORT_VERSION, "verify_key": ALLOW[0].hex(), "id": 0,
                                                      "dim": 4}))

    async def slow_plain_client(port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(hello[:2])
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(hello[2:])
        await writer.drain()
        kind, reply = await read_control(reader)
        writer.close()
        return kind, reply

    res, outs, (kind, reply) = asyncio.run(run_session(cfg, vecs, adversary=slow_plain_client, head_start=0.5))
    assert kind == KIND_ABORT and reply["code"] == "tls-required"
    assert res.events["tls_mismatches"] == 1 and res.survivors == [0, 1, 2]
