"""secagg.errors: one tree rooted at SecAggError, with built-in mixins where they fit."""

import inspect

import pytest

from secagg import errors as E

VALUE_ERRORS = {
    E.ConfigurationError,
    E.InsecureParameterError,
    E.InputError,
    E.EncodingError,
    E.OutOfRangeError,
    E.SumOverflowError,
    E.DecodeError,
    E.IncompatibleError,
    E.SecretSharingError,
}
PROTOCOL_ERRORS = {E.UnexpectedMessage, E.UnknownParty, E.DroppedParty, E.DuplicateMessage, E.ProtocolViolation}


def _classes():
    return [getattr(E, name) for name in E.__all__ if name != "Reason"]


def test_all_exports_every_exception_class_in_the_module():
    defined = {c for _, c in inspect.getmembers(E, inspect.isclass) if issubclass(c, BaseException)}
    assert defined == set(_classes()) and "Reason" in E.__all__


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_structured_fields_survive_pickling(cls):
    import pickle

    try:
        exc = cls("what happened", code=E.Reason.VIOLATION, party=4, round="masked_input")
    except TypeError:  # classes with their own field signature
        pytest.skip(f"{cls.__name__} has its own constructor")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and str(back) == "what happened"
    assert (back.code, back.party, back.round) == (E.Reason.VIOLATION, 4, "masked_input")


def test_every_class_has_a_default_code_its_parent_does_not_share():
    codes = {cls: cls.code for cls in _classes()}
    assert codes[E.SecAggError] == E.Reason.ERROR
    for cls, code in codes.items():
        assert code in vars(E.Reason).values()
        if cls is not E.SecAggError and cls is not E.ProtocolError:
            assert code != codes[cls.__mro__[1]], cls


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_class_derives_from_secagg_error(cls):
    assert issubclass(cls, E.SecAggError)
    assert issubclass(cls, Exception)
    assert cls.__doc__  # each says what it means


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_value_error_mixin_exactly_where_documented(cls):
    assert issubclass(cls, ValueError) == (cls in VALUE_ERRORS)


def test_sum_overflow_is_overflow_and_encoding_error():
    assert issubclass(E.SumOverflowError, OverflowError)
    assert issubclass(E.SumOverflowError, E.EncodingError)
    assert not issubclass(E.EncodingError, OverflowError)


def test_integrity_error_is_not_swallowed_by_except_value_error():
    with pytest.raises(E.IntegrityError):
        try:
            raise E.IntegrityError("bad tag")
        except ValueError:  # pragma: no cover - must not catch it
            pytest.fail("IntegrityError must not be a ValueError")


def test_subtrees():
    assert issubclass(E.InsecureParameterError, E.ConfigurationError)
    for cls in PROTOCOL_ERRORS:
        assert issubclass(cls, E.ProtocolError)
    assert not issubclass(E.ProtocolAbort, E.ProtocolError)


def test_protocol_abort_keeps_its_reason():
    exc = E.ProtocolAbort("only 2 survivors, threshold is 3")
    assert exc.reason == "only 2 survivors, threshold is 3"
    assert str(exc) == exc.reason
    with pytest.raises(E.SecAggError, match="threshold"):
        raise exc


def test_out_of_range_error_carries_its_fields_across_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(E.OutOfRangeError(3, 40, 7.5, 1.0)))
    assert (err.count, err.size, err.max_abs, err.bound) == (3, 40, 7.5, 1.0)
    assert isinstance(err, E.EncodingError) and "3 of 40" in str(err) and "bound=" in str(err)
    told = pickle.loads(pickle.dumps(E.OutOfRangeError(3, 40, 7.5, 1.0, advice="ask the server for --bound 7.5")))
    assert str(told).endswith("(largest magnitude 7.5): ask the server for --bound 7.5") and "bound=" not in str(told)
    assert told.advice == "ask the server for --bound 7.5"
