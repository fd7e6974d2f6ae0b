"""The deprecated ``clip=`` keyword, resolved in one place.

``clip`` once named a per-coordinate bound in some classes and an L2 norm in others; it
is now ``bound=`` (per coordinate) or ``clip_norm=`` (L2). The old keyword still works,
with a :class:`DeprecationWarning`, and giving both the old and the new name raises
:class:`~secagg.errors.ConfigurationError`. Used by secagg's aggregators and DP classes
and by the ``fl`` layer (same distribution); not part of the public API.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable, TypeVar

from .errors import ConfigurationError

__all__ = ["renamed_keyword", "accept_old_clip"]

_T = TypeVar("_T")


def renamed_keyword(owner: object, old: str, old_value: Any, new: str, new_value: Any, default: Any = None) -> Any:
    """Resolve a renamed keyword: warn when the old one is used, refuse both at once.

    Returns the value to use (``new_value``, else ``old_value``, else ``default``).
    ``owner`` is the object being built, or the name of the function being called; the
    warning points at the caller of the function that calls this one.
    """
    if old_value is None:
        return default if new_value is None else new_value
    where = owner if isinstance(owner, str) else type(owner).__name__
    if new_value is not None:
        raise ConfigurationError(f"{where}: give {new}= only ({old}= is its deprecated old name)")
    warnings.warn(
        f"{where}({old}=...) is deprecated: use {new}= ("
        + ("a per-coordinate bound" if new == "bound" else "an L2 norm")
        + "; 'clip' no longer names either)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def accept_old_clip(cls: type[_T]) -> type[_T]:
    """Class decorator: ``cls(clip=...)`` is the old name of its ``clip_norm`` argument
    (an L2 norm), and ``obj.clip`` a deprecated alias of ``obj.clip_norm``."""
    init: Callable[..., None] = getattr(cls, "__init__")
    position = list(inspect.signature(init).parameters).index("clip_norm") - 1  # without self

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, clip: float | None = None, **kwargs: Any) -> None:
        if clip is not None:
            positional = len(args) > position
            given = args[position] if positional else kwargs.get("clip_norm")
            value = renamed_keyword(self, "clip", clip, "clip_norm", given)
            if positional:
                args = args[:position] + (value,) + args[position + 1:]
            else:
                kwargs["clip_norm"] = value
        init(self, *args, **kwargs)

    def clip(self: Any) -> float:
        """Deprecated alias of ``clip_norm``."""
        warnings.warn(f"{type(self).__name__}.clip is deprecated: read clip_norm", DeprecationWarning, stacklevel=2)
        norm: float = self.clip_norm
        return norm

    # the class object is patched at import (mypy cannot see a replaced __init__)
    setattr(cls, "__init__", __init__)
    setattr(cls, "clip", property(clip))
    return cls
