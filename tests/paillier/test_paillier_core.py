"""Packed Paillier: encrypt/add/decrypt exactness, overflow accounting, key and encoding checks."""

import builtins

import numpy as np
import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import Quantizer
from secagg import paillier as P
from secagg.errors import (
    ConfigurationError,
    IncompatibleError,
    InputError,
    InsecureParameterError,
    SumOverflowError,
)
from secagg.paillier._keys import check_public_key, security_bits
from secagg.paillier._obfuscation import get_encryptor
from secagg.paillier._packing import layout_for, offset_encode, pack, unpack


@pytest.fixture(scope="module")
def keys():
    return P.generate_keypair(512, allow_insecure=True)


@pytest.fixture(scope="module")
def other_keys():
    return P.generate_keypair(512, allow_insecure=True)


# ---------------------------------------------------------------- round trips
@settings(deadline=None, max_examples=40)
@given(
    bits=st.sampled_from([4, 8, 13, 16, 24, 31, 32, 48, 64]),
    num_clients=st.integers(1, 5),
    data=st.data(),
    obfuscation=st.sampled_from(["full", "fast"]),
)
def test_round_trip_including_negatives_and_extremes(keys, bits, num_clients, data, obfuscation):
    pk, sk = keys
    clip = data.draw(st.sampled_from([1e-3, 1.0, 7.5]))
    q = Quantizer(bound=clip, num_clients=num_clients, bits=bits, rounding="nearest", out_of_range="clip")
    elems = st.one_of(
        st.floats(-3 * clip, 3 * clip, allow_nan=False),
        st.sampled_from([clip, -clip, 0.0, 1e300, -1e300, 5e-324]),
    )
    x = np.array(data.draw(st.lists(elems, min_size=1, max_size=80)))
    ev = P.encrypt_vector(pk, x, q, obfuscation=obfuscation, allow_insecure=True)
    assert ev.count == 1 and ev.dim == x.size
    np.testing.assert_array_equal(P.decrypt_quantized(sk, ev), q.quantize(x))
    decoded = P.decrypt_vector(sk, ev)
    assert decoded.dtype == np.float64
    clipped = np.clip(x, -clip, clip)
    # half a step, plus float64 round-off of the scaling when the scale is capped at 2^53
    # (64-bit rings with few clients: the step is then below one ulp of the input)
    assert np.all(np.abs(decoded - clipped) <= 0.5 * q.resolution * (1 + 1e-9) + 2 * np.spacing(np.abs(clipped)))


@pytest.mark.parametrize("obfuscation", ["full", "fast"])
@pytest.mark.parametrize("bits,k", [(16, 7), (13, 5), (32, 3), (64, 4)])
def test_sum_of_k_vectors_equals_exact_sum_of_encodings(keys, obfuscation, bits, k):
    pk, sk = keys
    rng = np.random.default_rng(bits * 10 + k)
    q = Quantizer(bound=2.0, num_clients=k, bits=bits, out_of_range="clip")
    xs = rng.uniform(-2.5, 2.5, size=(k, 97))
    ints = [q.quantize(x, np.random.default_rng(i)) for i, x in enumerate(xs)]
    evs = [P.encrypt_vector(pk, x, q, rng=np.random.default_rng(i), obfuscation=obfuscation, allow_insecure=True) for i, x in enumerate(xs)]
    total = P.sum(evs)
    assert total.count == k
    np.testing.assert_array_equal(P.decrypt_quantized(sk, total), np.sum(ints, axis=0))
    np.testing.assert_allclose(P.decrypt_vector(sk, total), q.dequantize(np.sum(ints, axis=0), k), rtol=0, atol=0)
    # operator form and builtin sum agree with paillier.sum
    np.testing.assert_array_equal(P.decrypt_quantized(sk, builtins.sum(evs)), np.sum(ints, axis=0))
    np.testing.assert_array_equal(P.decrypt_quantized(sk, evs[0] + P.sum(evs[1:])), np.sum(ints, axis=0))


def test_full_slots_at_capacity_do_not_carry(keys):
    """num_clients summands at +clip (largest slot value) and at -clip (zero) decode exactly."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=6, bits=12, rounding="nearest")
    for value in (1.0, -1.0):
        x = np.full(50, value)
        total = P.sum([P.encrypt_vector(pk, x, q, allow_insecure=True) for _ in range(6)])
        np.testing.assert_array_equal(P.decrypt_quantized(sk, total), np.full(50, 6 * round(value * q.q_max)))
    # alternating extremes: a carry from one slot would corrupt its neighbour
    x = np.tile([1.0, -1.0], 25)
    total = P.sum([P.encrypt_vector(pk, x, q, allow_insecure=True) for _ in range(6)])
    np.testing.assert_array_equal(P.decrypt_quantized(sk, total), 6 * q.quantize(x))


def test_plaintext_addition_and_scalar_multiplication(keys):
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=10, bits=20, rounding="nearest")
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-1, 1, size=(2, 40))
    ev = P.encrypt_vector(pk, a, q, allow_insecure=True)
    plus = ev + b
    assert plus.count == 2
    np.testing.assert_array_equal(P.decrypt_quantized(sk, plus), q.quantize(a) + q.quantize(b))
    assert (b + ev).count == 2  # ndarray on the left defers to EncryptedVector
    tripled = 3 * plus
    assert tripled.count == 6
    np.testing.assert_array_equal(P.decrypt_quantized(sk, tripled), 3 * (q.quantize(a) + q.quantize(b)))
    zero = ev * 0
    assert zero.count == 0
    np.testing.assert_array_equal(P.decrypt_vector(sk, zero), np.zeros(40))


def test_overflow_raised_at_the_right_count(keys):
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=3, bits=8)
    x = np.linspace(-1, 1, 30)
    e = [P.encrypt_vector(pk, x, q, allow_insecure=True) for _ in range(4)]
    three = e[0] + e[1] + e[2]  # exactly at capacity: allowed
    assert three.count == 3
    with pytest.raises(SumOverflowError, match="at most 3"):
        three + e[3]
    with pytest.raises(SumOverflowError):
        P.sum(e)
    with pytest.raises(SumOverflowError):
        three + x  # a plaintext counts as one summand
    with pytest.raises(SumOverflowError):
        (e[0] + e[1]) * 2
    assert (e[0] * 3).count == 3
    with pytest.raises(SumOverflowError):
        e[0] * 4
    # nothing was mutated by the failed operations
    assert three.count == 3 and e[0].count == 1


def test_operations_paillier_does_not_allow_name_the_rule(keys):
    pk, _ = keys
    ev = P.encrypt_vector(pk, np.zeros(3), Quantizer(bound=1.0, num_clients=4, bits=8), allow_insecure=True)
    for bad in (1.5, np.float64(2.0), True, "2", np.ones(3)):
        with pytest.raises(InputError, match="integer"):
            ev * bad
    with pytest.raises(InputError, match="additively homomorphic"):
        ev * ev
    with pytest.raises(InputError, match="divided"):
        ev / 2
    with pytest.raises(InputError, match="plaintext vector of shape"):
        ev + 1.0
    with pytest.raises(InputError, match="plaintext vector of shape"):
        ev - 1
    with pytest.raises(InputError):
        1.0 - ev
    with pytest.raises(TypeError):
        ev + "x"  # not a number at all: Python's own TypeError
    assert (ev + 0) is ev and (0 + ev) is ev  # the start value of sum()


# ---------------------------------------------------------------- arithmetic as phe users expect
_OPS = {
    "a + b": (lambda a, b, x, k: a + b, lambda A, B, X, k: A + B, lambda ca, cb, k: ca + cb),
    "a - b": (lambda a, b, x, k: a - b, lambda A, B, X, k: A - B, lambda ca, cb, k: ca + cb),
    "-a": (lambda a, b, x, k: -a, lambda A, B, X, k: -A, lambda ca, cb, k: ca),
    "a * k": (lambda a, b, x, k: a * k, lambda A, B, X, k: k * A, lambda ca, cb, k: abs(k) * ca),
    "k * a": (lambda a, b, x, k: k * a, lambda A, B, X, k: k * A, lambda ca, cb, k: abs(k) * ca),
    "a + x": (lambda a, b, x, k: a + x, lambda A, B, X, k: A + X, lambda ca, cb, k: ca + 1),
    "x + a": (lambda a, b, x, k: x + a, lambda A, B, X, k: A + X, lambda ca, cb, k: ca + 1),
    "a - x": (lambda a, b, x, k: a - x, lambda A, B, X, k: A - X, lambda ca, cb, k: ca + 1),
    "x - a": (lambda a, b, x, k: x - a, lambda A, B, X, k: X - A, lambda ca, cb, k: ca + 1),
    "b - a - a": (lambda a, b, x, k: b - a - a, lambda A, B, X, k: B - 2 * A, lambda ca, cb, k: cb + 2 * ca),
    "sum([a, -b, a])": (lambda a, b, x, k: builtins.sum([a, -b, a]), lambda A, B, X, k: 2 * A - B,
                        lambda ca, cb, k: 2 * ca + cb),
}


@settings(deadline=None, max_examples=60)
@given(
    op=st.sampled_from(sorted(_OPS)),
    bits=st.sampled_from([6, 12, 16, 32]),
    capacity=st.integers(1, 12),
    ca=st.integers(1, 3),
    cb=st.integers(1, 3),
    k=st.integers(-4, 4),
    data=st.data(),
)
def test_arithmetic_round_trips_or_raises_overflow_before_wrapping(keys, op, bits, capacity, ca, cb, k, data):
    """Every operator decrypts to the same arithmetic on the quantized integers, with the
    documented summand count; when that count exceeds the capacity it raises
    SumOverflowError instead of wrapping a slot."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=capacity, bits=bits, rounding="nearest")
    dim = data.draw(st.integers(1, 70))
    vals = st.lists(st.floats(-1, 1, allow_nan=False), min_size=dim, max_size=dim)
    # a holds ca summands at the extremes of the range, b holds cb, x is one plaintext
    rows_a = [np.array(data.draw(vals)) for _ in range(ca)]
    rows_b = [np.array(data.draw(vals)) for _ in range(cb)]
    x = np.array(data.draw(vals))
    if ca > capacity or cb > capacity:
        with pytest.raises(SumOverflowError):
            P.sum([P.encrypt_vector(pk, r, q, allow_insecure=True) for r in rows_a + rows_b])
        return
    a = P.sum([P.encrypt_vector(pk, r, q, allow_insecure=True) for r in rows_a])
    b = P.sum([P.encrypt_vector(pk, r, q, allow_insecure=True) for r in rows_b])
    A = builtins.sum(q.quantize(r) for r in rows_a)
    B = builtins.sum(q.quantize(r) for r in rows_b)
    X = q.quantize(x)
    enc_op, int_op, count_of = _OPS[op]
    count = count_of(ca, cb, k)
    if count > capacity:
        with pytest.raises(SumOverflowError):
            enc_op(a, b, x, k)
        assert a.count == ca and b.count == cb  # nothing was mutated
        return
    out = enc_op(a, b, x, k)
    assert out.count == count
    np.testing.assert_array_equal(P.decrypt_quantized(sk, out), int_op(A, B, X, k))
    np.testing.assert_array_equal(P.decrypt_vector(sk, out), q.dequantize(int_op(A, B, X, k), count))


def test_difference_of_extremes_uses_the_full_range_without_borrowing(keys):
    """+clip minus -clip in alternating slots: a borrow between packed slots would corrupt
    the neighbour; the offset rule keeps every slot non-negative."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=2, bits=10, rounding="nearest")
    hi = np.tile([1.0, -1.0], 40)
    a = P.encrypt_vector(pk, hi, q, allow_insecure=True)
    b = P.encrypt_vector(pk, -hi, q, allow_insecure=True)
    np.testing.assert_array_equal(P.decrypt_quantized(sk, a - b), 2 * q.quantize(hi))
    np.testing.assert_array_equal(P.decrypt_quantized(sk, b - a), -2 * q.quantize(hi))
    with pytest.raises(SumOverflowError):
        (a - b) - a  # three summands in a capacity of two


# ---------------------------------------------------------------- mixing
def test_mixing_keys_or_encodings_raises(keys, other_keys):
    pk, sk = keys
    pk2, sk2 = other_keys
    q = Quantizer(bound=1.0, num_clients=4, bits=16)
    x = np.ones(10)
    ev = P.encrypt_vector(pk, x, q, allow_insecure=True)
    with pytest.raises(IncompatibleError, match="different Paillier public keys"):
        ev + P.encrypt_vector(pk2, x, q, allow_insecure=True)
    for q2 in (
        Quantizer(bound=2.0, num_clients=4, bits=16),
        Quantizer(bound=1.0, num_clients=5, bits=16),
        Quantizer(bound=1.0, num_clients=4, bits=17),
    ):
        with pytest.raises(IncompatibleError, match="different encodings"):
            ev + P.encrypt_vector(pk, x, q2, allow_insecure=True)
    with pytest.raises(IncompatibleError, match="dim"):
        ev + P.encrypt_vector(pk, np.ones(11), q, allow_insecure=True)
    with pytest.raises(IncompatibleError):
        ev + np.ones(11)
    with pytest.raises(IncompatibleError):
        P.decrypt_vector(sk2, ev)
    with pytest.raises(IncompatibleError):
        P.encrypt_vector(pk, x, q, encryptor=P.Encryptor(pk2, allow_insecure=True), allow_insecure=True)


def test_bad_inputs_raise_input_errors(keys):
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=2, bits=16)
    for bad in (np.zeros((2, 2)), np.zeros(0), np.array([1.0, np.nan]), np.array([np.inf])):
        with pytest.raises(InputError):
            P.encrypt_vector(pk, bad, q, allow_insecure=True)
    with pytest.raises(InputError):
        P.encrypt_vector(object(), np.zeros(3), q, allow_insecure=True)
    with pytest.raises(InputError):
        P.encrypt_vector(pk, np.zeros(3), "not a quantizer", allow_insecure=True)
    with pytest.raises(InputError):
        P.encrypt_quantized(pk, np.array([q.q_max + 1]), q, allow_insecure=True)
    with pytest.raises(InputError):
        P.sum([])
    with pytest.raises(InputError):
        P.decrypt_vector(pk, P.encrypt_vector(pk, np.zeros(3), q, allow_insecure=True))  # public key is not a private key
    with pytest.raises(ConfigurationError):
        P.encrypt_vector(pk, np.zeros(3), q, obfuscation="none", allow_insecure=True)


# ---------------------------------------------------------------- keys
def test_insecure_key_size_requires_the_flag():
    with pytest.raises(InsecureParameterError, match="2048"):
        P.generate_keypair(1024)
    with pytest.raises(InsecureParameterError):
        P.generate_keypair(512, allow_insecure=False)
    pk, sk = P.generate_keypair(256, allow_insecure=True)
    assert isinstance(pk, phe.PaillierPublicKey) and isinstance(sk, phe.PaillierPrivateKey)
    assert int(pk.n).bit_length() == 256
    with pytest.raises(ConfigurationError):
        P.generate_keypair(2048.0)


def test_a_small_key_is_refused_everywhere_it_enters(keys):
    """A 512-bit phe key (not generated by secagg) is refused by every entry point unless the
    caller passes allow_insecure=True there; a cached encryptor does not let it through."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=2, bits=16)
    small = phe.PaillierPublicKey(pk.n)  # as a user of phe would hold it
    payload = P.encrypt_vector(small, np.zeros(4), q, allow_insecure=True).to_bytes()  # caches an encryptor
    entries = {
        "encrypt_vector": lambda: P.encrypt_vector(small, np.zeros(4), q),
        "encrypt_quantized": lambda: P.encrypt_quantized(small, np.zeros(4, dtype=np.int64), q),
        "Encryptor": lambda: P.Encryptor(small),
        "get_encryptor": lambda: get_encryptor(small),
        "from_bytes": lambda: P.EncryptedVector.from_bytes(payload, small),
        "sum_submissions": lambda: P.sum_submissions([payload], small, q, 4),
        "aggregator": lambda: P.PaillierAggregator(keypair=(small, sk)),
        "aggregator key_bits": lambda: P.PaillierAggregator(key_bits=1024),
        "check_public_key": lambda: check_public_key(small),
    }
    for name, call in entries.items():
        with pytest.raises(InsecureParameterError, match="2048"):
            call()
            pytest.fail(f"{name} accepted a 512-bit key")


def test_short_obfuscation_exponents_are_below_the_floor():
    """The floor is twice the key's security level: 224 bits for 2048-bit keys, 256 for 3072,
    384 for 7680. The modulus only needs the right size to check this (no key generation)."""
    for n_bits, floor in ((2048, 224), (3072, 256), (7680, 384)):
        pk = phe.PaillierPublicKey((1 << (n_bits - 1)) + 1)
        assert P.min_exponent_bits(pk) == floor
        assert P.Encryptor(pk, obfuscation="fast").exponent_bits == max(256, floor)
        with pytest.raises(InsecureParameterError, match=f"floor of {floor}"):
            P.Encryptor(pk, obfuscation="fast", exponent_bits=floor - 8)
        assert P.Encryptor(pk, obfuscation="fast", exponent_bits=floor - 8, allow_insecure=True).exponent_bits == floor - 8
    assert [security_bits(b) for b in (512, 1024, 2048, 3072, 7680, 15360)] == [0, 80, 112, 128, 192, 256]


def test_phe_keys_interoperate(keys):
    """Our ciphertexts are ordinary Paillier ciphertexts: phe's raw_decrypt recovers the packed plaintext."""
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=3, bits=16, rounding="nearest")
    x = np.linspace(-1, 1, 20)
    for obfuscation in ("full", "fast"):
        ev = P.encrypt_vector(pk, x, q, obfuscation=obfuscation, allow_insecure=True)
        layout = layout_for(q, int(pk.n).bit_length(), 20)
        expected = pack(offset_encode(q.quantize(x), q), layout)
        assert [sk.raw_decrypt(int(c)) for c in ev.ciphertexts] == [int(m) for m in expected]
        # and a phe ciphertext of a packed plaintext decrypts with ours
        phe_ct = phe.EncryptedNumber(pk, pk.raw_encrypt(int(expected[0])))
        ev.ciphertexts[0] = type(ev.ciphertexts[0])(phe_ct.ciphertext(be_secure=False))
        np.testing.assert_array_equal(P.decrypt_quantized(sk, ev), q.quantize(x))


# ---------------------------------------------------------------- packing and layout
@pytest.mark.parametrize("slot_bits", [1, 5, 8, 11, 16, 23, 32, 47, 64])
def test_pack_unpack_inverse(slot_bits):
    from secagg.paillier._packing import PackingLayout

    rng = np.random.default_rng(slot_bits)
    layout = PackingLayout(slot_bits=slot_bits, slots=max(1, 300 // slot_bits), dim=1000)
    hi = np.iinfo(np.uint64).max if slot_bits == 64 else (1 << slot_bits) - 1
    vals = rng.integers(0, hi, size=1000, dtype=np.uint64, endpoint=True)
    vals[:3] = [0, hi, hi]
    pts = pack(vals, layout)
    assert len(pts) == layout.num_ciphertexts
    assert all(int(m).bit_length() <= layout.plaintext_bits for m in pts)
    assert int(pts[0]) & ((1 << slot_bits) - 1) == 0  # slot 0 holds value 0 at the low bits
    np.testing.assert_array_equal(unpack(pts, layout), vals)


def test_layout_formula_and_expansion_target():
    """d = 100,000 at 16-bit values, 100 summands, 2048-bit key: expansion <= 3x (from the layout)."""
    q = Quantizer(bound=1.0, num_clients=100, bits=16)
    layout = layout_for(q, 2048, 100_000)
    assert layout.slot_bits == int(100 * 2 * q.q_max).bit_length() == 16
    assert layout.slots == 2047 // 16 == 127
    wire = 52 + layout.num_ciphertexts * 512  # header + ciphertexts of byte_length(n^2)
    expansion = wire / (4 * 100_000)
    assert expansion <= 3.0
    assert expansion == pytest.approx(1.0085, abs=1e-3)
    # 32-bit values fit 63 slots: the bound the issue quotes
    assert layout_for(Quantizer(bound=1.0, num_clients=100, bits=32), 2048, 10).slots == 63


# ---------------------------------------------------------------- obfuscation
def test_encryption_is_randomized_and_pool_is_used_once(keys):
    pk, sk = keys
    q = Quantizer(bound=1.0, num_clients=2, bits=16)
    x = np.zeros(5)
    for obfuscation in ("full", "fast"):
        enc = P.Encryptor(pk, obfuscation=obfuscation, allow_insecure=True)
        a = P.encrypt_vector(pk, x, q, encryptor=enc, allow_insecure=True)
        b = P.encrypt_vector(pk, x, q, encryptor=enc, allow_insecure=True)
        assert a.ciphertexts != b.ciphertexts  # same plaintext, different ciphertexts
        enc.precompute(5)
        assert enc.pooled == 5
        obs = enc.obfuscators(7)
        assert enc.pooled == 0 and len(set(int(o) for o in obs)) == 7
        c = P.encrypt_vector(pk, np.full(5, 0.5), q, encryptor=enc, allow_insecure=True)
        np.testing.assert_allclose(P.decrypt_vector(sk, a + c), np.full(5, 0.5), atol=q.resolution)
    threaded = P.Encryptor(pk, workers=2, allow_insecure=True)
    ev = P.encrypt_vector(pk, np.linspace(-1, 1, 200), q, encryptor=threaded, allow_insecure=True)
    np.testing.assert_allclose(P.decrypt_vector(sk, ev, workers=2), np.linspace(-1, 1, 200), atol=q.resolution)


@pytest.mark.parametrize("kwargs", [{"obfuscation": "djn"}, {"exponent_bits": 0}, {"exponent_bits": 257},
                                    {"exponent_bits": True}, {"workers": 0}])
def test_encryptor_rejects_bad_configuration(keys, kwargs):
    with pytest.raises(ConfigurationError):
        P.Encryptor(keys[0], **kwargs, allow_insecure=True)


def test_encryptor_refuses_plaintexts_outside_the_modulus():
    from secagg.errors import InputError
    from secagg.paillier import Encryptor, generate_keypair

    pk, _ = generate_keypair(1024, allow_insecure=True)
    enc = Encryptor(pk, allow_insecure=True)
    with pytest.raises(InputError, match=r"\[0, n\)"):
        enc.encrypt_plaintexts([1, pk.n])
    with pytest.raises(InputError):
        enc.encrypt_plaintexts([-1])
    assert len(enc.encrypt_plaintexts([0, pk.n - 1])) == 2
