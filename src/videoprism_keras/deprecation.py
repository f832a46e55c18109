"""Old public names, kept working for one release: every deprecation goes through here.

When a public name changes (a keyword argument, an attribute, a key of a returned dict),
the old one keeps working for one release, with a `DeprecationWarning` that names the
new one and points at the caller's line. Four tools, one message:

- `renamed_arguments(old="new", ...)`: a decorator for a function, a method or a
  constructor (a Keras layer's `__init__` included, so `from_config` of a config written
  with the old keys still builds the layer).
- `renamed(kwargs, old, new, where)`: the same for a dict of keyword arguments in hand
  (`**kwargs` passed on, a config read from a file).
- `renamed_attribute("new")`: a class attribute that reads (and writes) the new one.
- `renamed_keys(mapping, {"old": "new"}, where)`: a dict that also holds the old keys
  (serialised output keeps both for the release) and warns when code reads one.

Giving both the old and the new name of one argument is a `TypeError`: which one was
meant cannot be known. Importing this module loads nothing else (no Keras).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def message(where: str, old: str, new: str) -> str:
    """The one deprecation message: `"{where}: `old` is deprecated ...; use `new`"`."""
    return f"{where}: `{old}` is deprecated and will be removed in the next release; use `{new}`"


def _both_given(where: str, old: str, new: str, old_value: Any, new_value: Any) -> TypeError:
    return TypeError(
        f"{where}: `{old}` is the deprecated name of `{new}`; pass only `{new}`. "
        f"Received: {old}={old_value!r} and {new}={new_value!r}"
    )


def renamed(
    kwargs: dict[str, Any], old: str, new: str, where: str, *, stacklevel: int = 2
) -> dict[str, Any]:
    """Moves keyword argument `old` to its new name `new`, with a `DeprecationWarning`.

    Args:
        kwargs: dict. Keyword arguments; changed in place when it holds `old`.
        old: str. The deprecated name.
        new: str. The name that replaces it.
        where: str. What takes the argument, for the message (e.g. `"export"`).
        stacklevel: int. As `warnings.warn` takes it in the function that calls
            `renamed`: the default 2 blames that function's caller. Defaults to 2.

    Returns:
        `kwargs`, with `old` renamed to `new` when it was there.

    Raises:
        TypeError: when `kwargs` holds both `old` and `new`.
    """
    if old not in kwargs:
        return kwargs
    if new in kwargs:
        raise _both_given(where, old, new, kwargs[old], kwargs[new])
    warnings.warn(message(where, old, new), DeprecationWarning, stacklevel=stacklevel + 1)
    kwargs[new] = kwargs.pop(old)
    return kwargs


def renamed_arguments(*, where: str | None = None, **renames: str) -> Callable[[F], F]:
    """A decorator: the wrapped callable also takes each old keyword, with a warning.

        @renamed_arguments(resolution="size")
        def export(model, filepath, size=None, **kwargs): ...

    The new names must be parameters of the callable, or land in its `**kwargs`. The
    wrapper keeps the callable's signature (`inspect.signature` and Keras' automatic
    configs see the real one).

    Args:
        where: str or None. What takes the arguments, for the message. Defaults to
            None: the callable's qualified name (a class's name for `__init__`).
        **renames: str. `old="new"` for each deprecated keyword.

    Raises:
        TypeError: at decoration, when an old name is still a parameter or a new one
            is neither a parameter nor can land in `**kwargs`; at call, when both the
            old and the new name of one argument are given.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        parameters = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        for old, new in renames.items():
            if old in parameters or not (new in parameters or takes_any):
                raise TypeError(
                    f"renamed_arguments({old}={new!r}) on {fn.__qualname__}: the old name "
                    "must not be a parameter, the new one must be (or land in **kwargs)"
                )
        positions = {
            name: i for i, (name, p) in enumerate(parameters.items()) if p.kind in _POSITIONAL
        }
        place = where or fn.__qualname__.removesuffix(".__init__")

        def rename(args: tuple, kwargs: dict) -> None:
            for old, new in renames.items():
                at = positions.get(new, len(args))
                if old in kwargs and at < len(args):  # the new one given by position
                    raise _both_given(place, old, new, kwargs[old], args[at])
                renamed(kwargs, old, new, place, stacklevel=3)  # blames our caller

        if inspect.iscoroutinefunction(fn):  # stays one: `iscoroutinefunction`, mocks

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                rename(args, kwargs)
                return await fn(*args, **kwargs)

        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                rename(args, kwargs)
                return fn(*args, **kwargs)

        # `inspect.getfullargspec` (which Keras' `Operation.__new__` reads) does not
        # follow `__wrapped__`; it does read `__signature__`.
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class _RenamedAttribute:
    """The descriptor `renamed_attribute` makes."""

    def __init__(self, new: str):
        self.new = new
        self.old = self.where = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old, self.where = name, owner.__name__
        _hide_from_dir(owner)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        warnings.warn(message(self.where, self.old, self.new), DeprecationWarning, stacklevel=2)
        return getattr(obj, self.new)

    def __set__(self, obj: Any, value: Any) -> None:
        warnings.warn(message(self.where, self.old, self.new), DeprecationWarning, stacklevel=2)
        setattr(obj, self.new, value)


def renamed_attribute(new: str) -> Any:
    """A class attribute that stands for attribute `new`, with a warning on each use.

        class LayerNorm(keras.layers.Layer):
            epsilon = renamed_attribute("layer_norm_epsilon")

    `dir()` of an instance leaves the old name out: code that reads every attribute it
    lists (Keras' saving does, with `getattr`) does not use the old name, and must not
    warn.

    Args:
        new: str. The attribute that replaces this one.
    """
    return _RenamedAttribute(new)


@functools.cache
def _renamed_names(cls: type) -> frozenset[str]:
    return frozenset(
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, _RenamedAttribute)
    )


def _hide_from_dir(owner: type) -> None:
    """Gives `owner` a `__dir__` without its renamed attributes (once per class)."""
    if getattr(owner.__dict__.get("__dir__"), "hides_renamed", False):
        return
    inherited = owner.__dir__  # the class's own or the nearest base's (PyTorch's Module)

    def __dir__(obj: Any) -> list[str]:
        hidden = _renamed_names(type(obj))
        return [name for name in inherited(obj) if name not in hidden]

    __dir__.hides_renamed = True  # type: ignore[attr-defined]
    owner.__dir__ = __dir__  # type: ignore[method-assign]


class _RenamedKeys(dict):
    """A dict that warns when code reads one of its deprecated keys."""

    def __init__(self, data: Mapping[str, Any], renames: Mapping[str, str], where: str):
        super().__init__(data)
        self.renames, self.where = dict(renames), where

    def _warn(self, key: Any) -> None:
        if isinstance(key, str) and key in self.renames:
            warnings.warn(
                message(self.where, key, self.renames[key]), DeprecationWarning, stacklevel=3
            )

    def __getitem__(self, key: Any) -> Any:
        self._warn(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._warn(key)
        return super().get(key, default)


def renamed_keys(data: Mapping[str, Any], renames: Mapping[str, str], where: str) -> dict:
    """`data` as a dict that also holds each old key (the value of its new key).

    Iteration and serialisation (`json.dumps`, `dict(...)`) see both keys for the
    release; reading an old key with `[]` or `get` warns.

    Args:
        data: mapping. The content, under the new keys.
        renames: mapping. `{old: new}` for each deprecated key.
        where: str. What hands the dict out, for the message.

    Raises:
        KeyError: when a new key is missing from `data`.
    """
    missing = [new for new in renames.values() if new not in data]
    if missing:
        raise KeyError(f"renamed_keys: {missing} not in the data. Received: keys {list(data)}")
    full = {**data, **{old: data[new] for old, new in renames.items()}}
    return _RenamedKeys(full, renames, where)
