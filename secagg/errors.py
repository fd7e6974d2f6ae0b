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

__all__ = [
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


class SecAggError(Exception):
    """Root of every exception the library raises on purpose."""


class ConfigurationError(SecAggError, ValueError):
    """Parameters that cannot work together (say which, and what would)."""


class InsecureParameterError(ConfigurationError):
    """A parameter below the library's security floor, without an explicit opt-in flag."""


class InputError(SecAggError, ValueError):
    """An argument with the wrong shape, dtype, length or value (NaN, inf, out of range)."""


class EncodingError(SecAggError, ValueError):
    """A value that cannot be represented in the chosen fixed-point / ring encoding."""


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

    def __reduce__(self):  # keep the fields across pickling (Ray workers, multiprocessing)
        return (type(self), (self.count, self.size, self.max_abs, self.bound, self.advice))


class SumOverflowError(EncodingError, OverflowError):
    """A sum that would exceed the capacity of its ring or packing slot.

    Raised *before* the overflowing operation, never after a silent wrap-around.
    """


class DecodeError(SecAggError, ValueError):
    """Bytes that do not parse: wrong version, truncated, wrong length, bad field."""


class IntegrityError(SecAggError):
    """Authenticated data failed verification: tampered ciphertext, wrong associated
    data, wrong key, or an invalid signature. Never reveals which byte was wrong."""


class IncompatibleError(SecAggError, ValueError):
    """Objects that cannot be combined: different keys, encodings, lengths or sessions."""


class SecretSharingError(SecAggError, ValueError):
    """Shamir shares that cannot reconstruct: too few, duplicated, or from another secret."""


class ProtocolError(SecAggError):
    """A protocol message that is not allowed at this point.

    The state machine that raises it is left exactly as it was before the message.
    """


class UnexpectedMessage(ProtocolError):
    """A message that belongs to another round or state."""


class UnknownParty(ProtocolError):
    """A message from (or about) a party that is not part of this session."""


class DroppedParty(ProtocolError):
    """A message from a party that the protocol already counts as dropped."""


class DuplicateMessage(ProtocolError):
    """A second message for a slot that was already filled (duplicate or replay)."""


class ProtocolViolation(ProtocolError):
    """Message content that contradicts the protocol (wrong recipients, lengths, sets)."""


class ProtocolAbort(SecAggError):
    """The protocol cannot finish safely; no partial result is returned.

    ``reason`` says why (for example: fewer survivors than the threshold); ``blamed``
    names the clients whose misbehaviour caused it, when one is known.
    """

    def __init__(self, reason: str, blamed: tuple[int, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.blamed = tuple(blamed)


class BudgetExceeded(SecAggError):
    """Spending more privacy would exceed the configured (epsilon, delta) budget."""
