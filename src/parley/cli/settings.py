"""Where `parley serve` takes its settings: a flag, else PARLEY_<FLAG> in the environment,
else a key of the TOML file `--config` names, else the flag's default.

`settle(parser)` reads the serve parser's options once and makes the parser leave out
every flag not given (argparse's SUPPRESS), so that a flag given on the command line can
be told from a default; `Settings.resolve` then fills in the rest from the environment,
the file and the defaults. The merging and checking are plain functions of their inputs.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "ENV_PREFIX",
    "EPILOG",
    "Option",
    "Settings",
    "SettingsError",
    "from_environ",
    "from_table",
    "load_file",
    "merge",
    "settle",
]

ENV_PREFIX: Final = "PARLEY_"
CONFIG_DEST: Final = "config"  # --config: from the command line or PARLEY_CONFIG only

EPILOG: Final = (
    "Every flag can also be set as PARLEY_<FLAG> in the environment (PARLEY_PORT=9000; "
    "a repeatable flag takes a comma list, PARLEY_ALLOW_ORIGIN=https://a.example,"
    "https://b.example; a switch takes true/false, 1/0, yes/no, on/off) and as a key of the "
    "TOML file --config FILE names (port = 9000, rate-limit = 60 or rate_limit = 60, "
    'allow-origin = ["https://a.example"], guests = true). A flag wins over the '
    "environment, the environment over the file, the file over the default. "
    "docs/admin.md has an example file."
)

Kind = Literal["int", "float", "str", "bool", "list"]
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_KIND_NAMES: Final[dict[Kind, str]] = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "list": "a list of strings",
}


class SettingsError(Exception):
    """A setting that cannot be used; the message names where it came from."""


@dataclass(frozen=True, slots=True)
class Option:
    """One `serve` flag as a setting."""

    dest: str  # rate_limit
    kind: Kind
    default: Any
    choices: tuple[Any, ...] | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


def _kind_of(action: argparse.Action) -> Kind:
    if isinstance(action, argparse._StoreTrueAction):
        return "bool"
    if isinstance(action, argparse._AppendAction):
        return "list"
    if action.type is int:
        return "int"
    if action.type is float:
        return "float"
    return "str"


def _check_choice(option: Option, value: Any, source: str) -> Any:
    if option.choices is not None and value not in option.choices:
        allowed = ", ".join(map(str, option.choices))
        raise SettingsError(f"{source}: {value!r} is not one of {allowed}")
    return value


def _parse_text(option: Option, text: str, source: str) -> Any:
    """An environment variable's text as the option's value."""
    kind = option.kind
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "bool":
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    else:
        try:
            parsed = {"int": int, "float": float, "str": str}[kind](text)
        except ValueError:
            pass
        else:
            return _check_choice(option, parsed, source)
    raise SettingsError(f"{source}: expected {_KIND_NAMES[kind]}, got {text!r}")


def _check_value(option: Option, value: Any, source: str) -> Any:
    """A TOML value as the option's value, if it has the right type."""
    kind = option.kind
    if kind == "list" and isinstance(value, str):
        return _parse_text(option, value, source)
    fits = {
        "int": type(value) is int,
        "float": type(value) in (int, float),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if not fits:
        raise SettingsError(f"{source}: expected {_KIND_NAMES[kind]}, got {value!r}")
    return _check_choice(option, float(value) if kind == "float" else value, source)


def from_environ(options: Iterable[Option], environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings PARLEY_* variables give (an empty variable counts as unset)."""
    found: dict[str, Any] = {}
    for option in options:
        text = environ.get(option.env)
        if text:
            found[option.dest] = _parse_text(option, text, option.env)
    return found


def from_table(options: Iterable[Option], table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The settings a TOML file's table gives; keys are flag names, `-` or `_` alike."""
    by_dest = {option.dest: option for option in options}
    found: dict[str, Any] = {}
    for key, value in table.items():
        option = by_dest.get(key.replace("-", "_"))
        if option is None:
            raise SettingsError(f"{source}: unknown key {key!r} (the keys are serve's flags)")
        found[option.dest] = _check_value(option, value, f"{source}: key {key!r}")
    return found


def load_file(options: Iterable[Option], path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path}: cannot be read: {exc}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from None
    return from_table(options, table, f"config file {path}")


def merge(
    options: Iterable[Option],
    given: Mapping[str, Any],
    environ: Mapping[str, Any],
    file: Mapping[str, Any],
) -> dict[str, Any]:
    """flag > environment > file > default, for every option."""
    defaults = {option.dest: option.default for option in options}
    return {**defaults, **file, **environ, **given}


@dataclass(frozen=True, slots=True)
class Settings:
    """The serve parser's options, kept by `settle` for `resolve`."""

    options: tuple[Option, ...]

    def resolve(
        self,
        args: argparse.Namespace,
        environ: Mapping[str, str] = os.environ,
        read: Callable[[Iterable[Option], str], dict[str, Any]] = load_file,
    ) -> argparse.Namespace:
        """`args` (only the flags given) with every other setting filled in."""
        given = vars(args)
        path = given.get(CONFIG_DEST) or environ.get(ENV_PREFIX + CONFIG_DEST.upper())
        file = read(self.options, path) if path else {}
        values = merge(self.options, given, from_environ(self.options, environ), file)
        return argparse.Namespace(**{**given, **values, CONFIG_DEST: path})


def _describe(default: Any) -> str:
    if default is None or default == []:
        return "none"
    if isinstance(default, bool):
        return "off" if not default else "on"
    return str(default)


def settle(parser: argparse.ArgumentParser) -> None:
    """Make `parser` (serve's) take its settings from flags, environment and file: record
    each option, note its variable and default in its help, and leave out of the parsed
    namespace every flag not given. The parsed namespace carries the `Settings`."""
    options = []
    for action in parser._actions:  # argparse has no public list of a parser's options
        if not action.option_strings or action.dest in ("help", CONFIG_DEST):
            continue
        option = Option(
            action.dest,
            _kind_of(action),
            action.default,
            tuple(action.choices) if action.choices is not None else None,
        )
        options.append(option)
        note = f"default: {_describe(option.default)}; env {option.env}".replace("%", "%%")
        action.help = f"{action.help} ({note})" if action.help else f"({note})"
        action.default = argparse.SUPPRESS
    parser.set_defaults(settings=Settings(tuple(options)))
    parser.epilog = EPILOG
