"""The hyperparameter options of ``trapcount-train train``, generated from the recipe.

Every :class:`trainer.recipe.HParams` field with a :class:`trainer.recipe.Flag` becomes one
option: ``--`` and the field's name with dashes (``batch_size``: ``--batch-size``); a click
type from the field's type (a range when the flag has a minimum, a choice when it has
choices, a repeatable path for a list of files, ``--x/--no-x`` for a bool); and the flag's
help followed by the defaults the recipe gives each arch (:func:`trainer.recipe.hparams_for`).
The options themselves default to None (a bool flag to neither side), so that an option
left out keeps the arch's default; :func:`hparam_overrides` turns their values back into
HParams fields. Neither Keras nor the trainer's heavy modules are imported: ``--help``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trainer.recipe import ARCHS, Flag, HParams, hparams_for


def flagged_fields() -> list[tuple[dataclasses.Field, Flag]]:
    """The HParams fields that are options of ``train``, in declaration order."""
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(HParams) if f.metadata.get("flag")]


def hparam_options(command: Callable) -> Callable:
    """Decorate a click command with one option per flagged HParams field."""
    for hp_field, flag in reversed(flagged_fields()):  # click lists the last decorator first
        command = _option(hp_field, flag)(command)
    return command


def hparam_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The options' values (from the command's keyword arguments) as HParams fields, for
    :func:`trainer.recipe.hparams_for`; an option not given is None."""
    overrides = {}
    for hp_field, flag in flagged_fields():
        value = values[hp_field.name]
        if _origin(hp_field) is list:
            value = [str(v) for v in value] or None  # a repeated option: a tuple, maybe empty
        elif flag.side and value is not None:
            value = (value, value)
        overrides[hp_field.name] = value
    return overrides


def _option(hp_field: dataclasses.Field, flag: Flag) -> Callable:
    name = "--" + hp_field.name.replace("_", "-")
    help_text = flag.help + _shown_defaults(hp_field.name, flag)
    kind = _value_type(hp_field)
    if kind is bool:
        return click.option(f"{name}/--no-{name[2:]}", hp_field.name, default=None, help=help_text)
    if _origin(hp_field) is list:
        value_type = click.Path(path_type=Path) if flag.path else str
        return click.option(name, type=value_type, multiple=True, help=help_text)
    return click.option(name, type=_click_type(kind, flag), help=help_text)


def _click_type(kind: Any, flag: Flag) -> Any:
    if flag.choices is not None:
        return click.Choice(flag.choices)
    if kind is int or flag.side:
        return int if flag.minimum is None else click.IntRange(min=flag.minimum)
    if kind is float:
        return float if flag.minimum is None else click.FloatRange(min=flag.minimum)
    raise TypeError(f"no option type for the hyperparameter of type {kind}")


def _value_type(hp_field: dataclasses.Field) -> Any:
    """The field's type without None (``int | None``: int)."""
    hint = typing.get_type_hints(HParams)[hp_field.name]
    if isinstance(hint, types.UnionType):
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _origin(hp_field: dataclasses.Field) -> Any:
    return typing.get_origin(_value_type(hp_field))


def _shown_defaults(name: str, flag: Flag) -> str:
    """`` [default: 0.2]``, or each arch's where the recipes differ
    (`` [default: 20 (seed), 40 (resnet), ...]``); nothing when there is nothing to show."""
    arches_by_value: dict[str, list[str]] = {}
    for arch in ARCHS:
        shown = _shown(getattr(hparams_for(arch), name), flag)
        if shown is not None:
            arches_by_value.setdefault(shown, []).append(arch)
    if not arches_by_value:
        return ""
    if len(arches_by_value) == 1:
        return f" [default: {next(iter(arches_by_value))}]"
    each = ", ".join(f"{value} ({', '.join(arches)})" for value, arches in arches_by_value.items())
    return f" [default: {each}]"


def _shown(value: Any, flag: Flag) -> str | None:
    if value is None:
        return flag.none
    if isinstance(value, bool):
        return "on" if value else "off"
    if flag.side:
        return str(value[0])
    return str(value)
