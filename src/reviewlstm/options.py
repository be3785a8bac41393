"""One source per setting: a settings dataclass's field declares its type, default and help once, and
the command line, the config files' checks and the help text are all read from it.

    hidden: int = option(150, "units per direction", positive=True)
    pooling: Literal["auto", "final", "max", "mean", "attention"] = option("auto", "how steps are pooled")

A `Literal[...]` type is the field's choices (the flag's `choices`, the config file's check); a
field with `cli=False` has no flag of its own. The CLI turns fields into flags (`cli.add_flags`), as
Hugging Face's HfArgumentParser does; `check_fields` checks a built config against its types, so a
config file's `seed = "abc"` is one line naming the field.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Literal, Union

_NO_DEFAULT: Any = dataclasses.MISSING


def option(default=_NO_DEFAULT, help: str = "", *, flag: str | None = None, metavar: str | None = None,
           positive: bool = False, parse: Callable[[str], Any] | None = None, factory: Callable[[], Any] | None = None,
           cli: bool = True, only: str | None = None, show_default: bool = True):
    """A dataclass field with what its flag needs. flag: the flag's name (default: --field-name);
    positive: the flag refuses 0 and below as it parses; parse: the flag's own parser (str -> value);
    cli=False: no flag; only: the one command that has the flag (e.g. "distill")."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "positive": positive, "parse": parse, "cli": cli,
            "only": only, "show_default": show_default}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def hints(cls) -> dict[str, Any]:
    """The fields' types, resolved (`from __future__ import annotations` leaves them as text)."""
    return typing.get_type_hints(cls)


def choices(tp) -> tuple | None:
    """The values a Literal type allows (inside `X | None` too), else None."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = choices(arg)
            if found:
                return found
    return None


def scalar(tp):
    """The one non-None type of `X | None` (int, float, str, bool, a Literal), else tp itself."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


_WORDS = {int: "an int", float: "a float", bool: "a bool", str: "a str", type(None): "null"}


def _fits(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, dict) or tp in (list, dict):
        return isinstance(value, origin or tp)
    return True


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, dict) or tp in (list, dict):
        return "a " + (origin or tp).__name__
    return _WORDS.get(tp, getattr(tp, "__name__", str(tp)))


def check_value(name: str, value, tp) -> None:
    """ValueError unless `value` is of type `tp`: an int is not a bool, a float may be an int, a
    Literal's value is one of its choices."""
    if not _fits(value, tp):
        import json
        got = repr(value) if typing.get_origin(scalar(tp)) is Literal else json.dumps(value, default=repr)
        raise ValueError(f"{name} must be {_describe(tp)}, got {got}")


def check_fields(config) -> None:
    """Every field of a settings dataclass of the type it is declared with."""
    types_ = hints(type(config))
    for f in dataclasses.fields(config):
        check_value(f.name, getattr(config, f.name), types_[f.name])
