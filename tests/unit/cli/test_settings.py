"""Where `parley serve` takes its settings (cli/settings.py): flag > environment > file >
default, each source checked, every error naming its key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from parley.cli.main import parser
from parley.cli.settings import (
    Option,
    Settings,
    SettingsError,
    from_environ,
    from_table,
    load_file,
    merge,
)

PORT = Option("port", "int", 8080)
GRACE = Option("presence_grace", "float", 5.0)
DATA = Option("data", "str", "./data")
GUESTS = Option("guests", "bool", False)
ORIGINS = Option("allow_origin", "list", [])
FORMAT = Option("log_format", "str", "text", ("text", "json"))
OPTIONS = (PORT, GRACE, DATA, GUESTS, ORIGINS, FORMAT)


def test_merge_order_is_flag_environment_file_default() -> None:
    values = merge(
        OPTIONS,
        given={"port": 1},
        environ={"port": 2, "data": "/env"},
        file={"port": 3, "data": "/file", "presence_grace": 1.5},
    )
    assert values["port"] == 1
    assert values["data"] == "/env"
    assert values["presence_grace"] == 1.5
    assert values["guests"] is False  # nobody said: the default


def test_environment_values_take_each_type() -> None:
    environ = {
        "PARLEY_PORT": "9000",
        "PARLEY_PRESENCE_GRACE": "0.5",
        "PARLEY_DATA": "/srv/parley",
        "PARLEY_GUESTS": "Yes",
        "PARLEY_ALLOW_ORIGIN": "https://a.example, https://b.example,",
        "PARLEY_LOG_FORMAT": "json",
        "OTHER": "ignored",
    }
    assert from_environ(OPTIONS, environ) == {
        "port": 9000,
        "presence_grace": 0.5,
        "data": "/srv/parley",
        "guests": True,
        "allow_origin": ["https://a.example", "https://b.example"],
        "log_format": "json",
    }


def test_an_empty_variable_counts_as_unset() -> None:
    assert from_environ(OPTIONS, {"PARLEY_PORT": ""}) == {}


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("PARLEY_PORT", "eighty"),
        ("PARLEY_PORT", "80.5"),
        ("PARLEY_PRESENCE_GRACE", "soon"),
        ("PARLEY_GUESTS", "maybe"),
        ("PARLEY_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_environment_value_names_its_variable(variable: str, text: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        from_environ(OPTIONS, {variable: text})


def test_file_keys_take_dashes_or_underscores() -> None:
    table = {"port": 9000, "presence-grace": 2, "allow_origin": ["https://a.example"]}
    assert from_table(OPTIONS, table, "f") == {
        "port": 9000,
        "presence_grace": 2.0,
        "allow_origin": ["https://a.example"],
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", "9000"),
        ("port", True),
        ("port", 1.5),
        ("presence-grace", "2"),
        ("guests", 1),
        ("data", 7),
        ("allow-origin", [1]),
        ("log-format", "xml"),
    ],
)
def test_a_wrong_type_in_the_file_names_its_key(key: str, value: Any) -> None:
    with pytest.raises(SettingsError, match=f"key '{key}'"):
        from_table(OPTIONS, {key: value}, "config file x.toml")


def test_an_unknown_key_in_the_file_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown key 'prot'"):
        from_table(OPTIONS, {"prot": 1}, "config file x.toml")


def test_a_file_that_cannot_be_read_or_parsed_says_so(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot be read"):
        load_file(OPTIONS, str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("port = [\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_file(OPTIONS, str(broken))


def serve_args(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(["serve", *argv])


def test_the_serve_parser_leaves_out_what_was_not_given() -> None:
    args = serve_args(["--port", "1234"])
    assert args.port == 1234
    assert not hasattr(args, "data")
    assert isinstance(args.settings, Settings)


def test_resolve_fills_in_environment_file_and_defaults(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text('port = 3\ndata = "/file"\nrate-limit = 60\n')
    args = serve_args(["--config", str(config), "--guests"])
    resolved = args.settings.resolve(args, {"PARLEY_PORT": "2"})
    assert (resolved.port, resolved.data, resolved.rate_limit) == (2, "/file", 60)
    assert resolved.guests is True
    assert resolved.host == "127.0.0.1"  # the default
    assert resolved.allow_origin == []


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("port = 3\n")
    args = serve_args([])
    resolved = args.settings.resolve(args, {"PARLEY_CONFIG": str(config)})
    assert resolved.port == 3


def test_every_serve_flag_has_a_variable_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serve_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in serve_args([]).settings.options:
        assert f"env {option.env})" in text, option.env
    assert "A flag wins over the environment, the environment over the file" in text


def test_the_example_file_in_the_admin_guide_is_valid(tmp_path: Path) -> None:
    guide = (Path(__file__).parents[3] / "docs" / "admin.md").read_text()
    example = guide.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "parley.toml"
    config.write_text(example)
    args = serve_args(["--config", str(config)])
    resolved = args.settings.resolve(args, {})
    assert resolved.data == "/var/lib/parley"
    assert resolved.allow_origin == ["https://chat.example.com"]
    assert resolved.log_format == "json"
