"""One exception tree for the whole library.

Every error raised on purpose by ``secagg`` derives from :class:`SecAggError`, so a
caller can catch the library's failures with one ``except`` clause and still tell them
apart when it matters. Where a built-in exception already names the category
(``ValueError`` for bad arguments, ``OverflowError`` for a sum that cannot fit), the
library exception also derives from it, so existing ``except ValueError`` code keeps
working.

Tree::

    SecAggError
    ├── ConfigurationError (ValueError)      impossible or unsafe parameters
    │   └── InsecureParameterError           a setting below the security floor without opt-in
    ├── InputError (ValueError)              wrong shape, dtype, length, NaN/inf, out of range
    ├── EncodingError (ValueError)           a value cannot be represented in the chosen encoding
    │   ├── OutOfRangeError                  inputs beyond the encoder's bound (out_of_range="raise")
    │   └── SumOverflowError (OverflowError) a sum would exceed the ring / slot capacity
    ├── DecodeError (ValueError)             malformed, truncated or wrong-version bytes
    ├── IntegrityError                       tampered ciphertext, bad tag, bad signature
    ├── IncompatibleError (ValueError)       mixing keys, encodings or parameters
    ├── SecretSharingError (ValueError)      too few, duplicate or foreign Shamir shares
    ├── ProtocolError                        a message that the protocol forbids here
    │   ├── UnexpectedMessage                wrong round / wrong state
    │   ├── UnknownParty                     sender is not part of this session
    │   ├── DroppedParty                     sender already counted as dropped
    │   ├── DuplicateMessage                 a second message for the same slot (replay)
    │   └── ProtocolViolation                content contradicts the protocol rules
    ├── ProtocolAbort                        the protocol cannot finish safely (too few survivors)
    └── BudgetExceeded                       a privacy budget would be exceeded
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

__all__ = [
    "Reason",
    "SecAggError",
    "ConfigurationError",
    "InsecureParameterError",
    "InputError",
    "EncodingError",
    "OutOfRangeError",
    "SumOverflowError",
    "DecodeError",
    "IntegrityError",
    "IncompatibleError",
    "SecretSharingError",
    "ProtocolError",
    "UnexpectedMessage",
    "UnknownParty",
    "DroppedParty",
    "DuplicateMessage",
    "ProtocolViolation",
    "ProtocolAbort",
    "BudgetExceeded",
]


class Reason:
    """Machine-readable reason codes carried by :attr:`SecAggError.code` (callers branch on
    these, never on message text)."""

    ERROR = "error"
    CONFIGURATION = "configuration"
    INSECURE = "insecure_parameter"
    INPUT = "input"
    ENCODING = "encoding"
    OVERFLOW = "overflow"
    OUT_OF_RANGE = "out_of_range"
    MALFORMED = "malformed"
    FRAME_TOO_LARGE = "frame_too_large"
    INTEGRITY = "integrity"
    BAD_SIGNATURE = "bad_signature"
    INCOMPATIBLE = "incompatible"
    SECRET_SHARING = "secret_sharing"
    WRONG_ROUND = "wrong_round"
    WRONG_SESSION = "wrong_session"
    WRONG_RECIPIENT = "wrong_recipient"
    UNKNOWN_PARTY = "unknown_party"
    DROPPED_PARTY = "dropped_party"
    DUPLICATE = "duplicate"
    IMPERSONATION = "impersonation"
    VIOLATION = "violation"
    BAD_TRANSCRIPT = "bad_transcript"
    BOTH_SHARES = "both_shares"
    ABORT = "abort"
    BELOW_THRESHOLD = "below_threshold"
    BELOW_FLOOR = "below_min_survivors"
    UNRECOVERABLE = "unrecoverable_secret"
    BUDGET = "budget_exceeded"


class ErrorContext(TypedDict):
    """Where an error happened: the ``party`` and ``round`` keyword fields of every
    :class:`SecAggError`, built once per message and passed on as ``**context``."""

    party: int | None
    round: str | None


def _rebuild(cls: type[SecAggError], args: tuple[object, ...], state: dict[str, object]) -> SecAggError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class SecAggError(Exception):
    """Root of every exception the library raises on purpose.

    Besides the message, every instance carries structured fields that callers can branch
    on: ``code`` (a :class:`Reason` constant; each class has a default), ``party`` (the
    client id concerned, or ``None``) and ``round`` (the protocol round name, or ``None``).
    They survive pickling (Ray ships exceptions between processes).
    """

    code: str = Reason.ERROR

    def __init__(self, *args: object, code: str | None = None, party: int | None = None,
                 round: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        self.party = party
        self.round = round

    def __reduce__(self) -> tuple[Callable[..., SecAggError], tuple[object, ...]]:
        # keep code/party/round (and subclass fields) across pickling
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(SecAggError, ValueError):
    """Parameters that cannot work together (say which, and what would)."""

    code = Reason.CONFIGURATION


class InsecureParameterError(ConfigurationError):
    """A parameter below the library's security floor, without an explicit opt-in flag."""

    code = Reason.INSECURE


class InputError(SecAggError, ValueError):
    """An argument with the wrong shape, dtype, length or value (NaN, inf, out of range)."""

    code = Reason.INPUT


class EncodingError(SecAggError, ValueError):
    """A value that cannot be represented in the chosen fixed-point / ring encoding."""

    code = Reason.ENCODING


class OutOfRangeError(EncodingError):
    """Input values beyond a fixed-point encoder's per-coordinate ``bound``.

    Raised by :class:`secagg.quantize.Quantizer` (and every entry point built on it)
    under the default ``out_of_range="raise"``, *before* anything is encoded or sent, so
    no sum is ever computed from silently clipped inputs.

    Attributes
    ----------
    count:
        number of values with ``|x| > bound``.
    size:
        number of values checked.
    max_abs:
        the largest ``|x|`` seen (the smallest ``bound`` that would accept every value).
    bound:
        the encoder's bound.
    advice:
        what to change, when the caller knows better than ``bound=`` / ``out_of_range=``
        (e.g. a network client, whose bound is the server's ``--bound``); ``None``: the
        keyword arguments.
    """

    code = Reason.OUT_OF_RANGE

    def __init__(self, count: int, size: int, max_abs: float, bound: float, advice: str | None = None) -> None:
        self.count, self.size, self.max_abs, self.bound = int(count), int(size), float(max_abs), float(bound)
        self.advice = advice
        if advice is None:
            advice = (f"raise bound= to at least {self.max_abs:.6g}, or pass out_of_range='clip' to clip them to "
                      "the bound and count them in the result")
        super().__init__(
            f"{self.count} of {self.size} input values lie outside [-{self.bound:.6g}, {self.bound:.6g}] "
            f"(largest magnitude {self.max_abs:.6g}): {advice}"
        )

    def __reduce__(self) -> tuple[Callable[..., SecAggError], tuple[object, ...]]:
        # keep the fields across pickling (Ray workers, multiprocessing)
        return (type(self), (self.count, self.size, self.max_abs, self.bound, self.advice))


class SumOverflowError(EncodingError, OverflowError):
    """A sum that would exceed the capacity of its ring or packing slot.

    Raised *before* the overflowing operation, never after a silent wrap-around.
    """

    code = Reason.OVERFLOW


class DecodeError(SecAggError, ValueError):
    """Bytes that do not parse: wrong version, truncated, wrong length, bad field."""

    code = Reason.MALFORMED


class IntegrityError(SecAggError):
    """Authenticated data failed verification: tampered ciphertext, wrong associated
    data, wrong key, or an invalid signature. Never reveals which byte was wrong."""

    code = Reason.INTEGRITY


class IncompatibleError(SecAggError, ValueError):
    """Objects that cannot be combined: different keys, encodings, lengths or sessions."""

    code = Reason.INCOMPATIBLE


class SecretSharingError(SecAggError, ValueError):
    """Shamir shares that cannot reconstruct: too few, duplicated, or from another secret."""

    code = Reason.SECRET_SHARING


class ProtocolError(SecAggError):
    """A protocol message that is not allowed at this point.

    The state machine that raises it is left exactly as it was before the message.
    """


class UnexpectedMessage(ProtocolError):
    """A message that belongs to another round or state."""

    code = Reason.WRONG_ROUND


class UnknownParty(ProtocolError):
    """A message from (or about) a party that is not part of this session."""

    code = Reason.UNKNOWN_PARTY


class DroppedParty(ProtocolError):
    """A message from a party that the protocol already counts as dropped."""

    code = Reason.DROPPED_PARTY


class DuplicateMessage(ProtocolError):
    """A second message for a slot that was already filled (duplicate or replay)."""

    code = Reason.DUPLICATE


class ProtocolViolation(ProtocolError):
    """Message content that contradicts the protocol (wrong recipients, lengths, sets)."""

    code = Reason.VIOLATION


class ProtocolAbort(SecAggError):
    """The protocol cannot finish safely; no partial result is returned.

    ``reason`` says why in words (for example: fewer survivors than the threshold),
    ``code`` in a :class:`Reason` constant; ``blamed`` names the clients whose
    misbehaviour caused it, when one is known.
    """

    code = Reason.ABORT

    def __init__(self, reason: str, blamed: tuple[int, ...] = (), *, code: str | None = None,
                 party: int | None = None, round: str | None = None) -> None:
        super().__init__(reason, code=code, party=party, round=round)
        self.reason = reason
        self.blamed = tuple(blamed)


class BudgetExceeded(SecAggError):
    """Spending more privacy would exceed the configured (epsilon, delta) budget."""

    code = Reason.BUDGET
