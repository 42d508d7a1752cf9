"""Bad input, fuzzed: property-based tests over spec files, version strings, template
values, model metadata files and command lines.

The contract, for every input hypothesis can think of:

* no traceback ever reaches the operator: never exit 70 (internal), never a crash that
  click would turn into exit 1;
* every rejection exits BAD_INPUT (2) with one clear line on stderr (no newline, no
  control character), naming the file at fault when a file is at fault, and nothing
  on stdout;
* nothing is registered, pushed or written when input is rejected: Nomad is
  unreachable (`--address http://127.0.0.1:1`), plain-HTTP traffic goes to a proxy
  that does not exist (so no image registry is reached either) and DOCKER_HOST names a
  socket that does not exist, so a stray call would show as exit 3 or 12, not 2;
* a value that is accepted reaches the rendered job as one HCL string literal that
  decodes back to exactly that value: no interpolation, no directive, no extra block.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
import traceback
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
from click.testing import CliRunner, Result
from helpers import all_commands, snapshot
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from nomadml.adapters import nomad_api
from nomadml.cli.main import main
from nomadml.cli.model import model as model_group
from nomadml.core.jobs import render_retraining
from nomadml.core.schema import Field
from nomadml.core.spec import ModelSpec, load_spec
from nomadml.core.spec_schema import SCHEMA
from nomadml.errors import ExitCode, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "iris" / "iris.toml"
SPEC_TEXT = SPEC.read_text(encoding="utf-8")
SPEC_DATA: dict[str, Any] = tomllib.loads(SPEC_TEXT)
NOWHERE = "http://127.0.0.1:1"  # nothing listens on port 1
DIGEST = "sha256:" + "e" * 64
IMAGE = f"127.0.0.1:5000/nomadml/models/iris@{DIGEST}"
BAD_INPUT = int(ExitCode.BAD_INPUT)
EXIT_CODES = {int(code) for code in ExitCode}
PREFIX = "nomadml: error: "
METADATA = "metadata.json"
VALID_METADATA = {
    "metrics": {"accuracy": 0.97},
    "signature": {"inputs": [{"name": "x", "type": "float"}], "outputs": [{"name": "y"}]},
    "training_data": {"rows": 150},
    "notes": "fuzz",
}

FUZZ = settings(
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


# -- running the command line in a sealed room -------------------------------------------


def _env(tmp: Path) -> dict[str, str | None]:
    """Nomad, the image registry and Docker all unreachable; no webhook."""
    proxy = "http://127.0.0.1:1"
    return {
        "NOMAD_ADDR": NOWHERE,
        "DOCKER_HOST": f"unix://{tmp}/no-docker-here.sock",
        "HTTP_PROXY": proxy,
        "http_proxy": proxy,
        "HTTPS_PROXY": proxy,
        "https_proxy": proxy,
        "NO_PROXY": "",
        "no_proxy": "",
        "NOMADML_WEBHOOK_URL": None,
        "NOMADML_WEBHOOK_SECRET": None,
    }


def cli(args: list[str], tmp: Path) -> Result:
    # Reads of an unreachable Nomad are retried with backoff: no sleeping in a fuzz loop.
    with mock.patch.object(nomad_api, "BACKOFF_S", 0.0):
        return CliRunner().invoke(main, ["--address", NOWHERE, *args], env=_env(tmp))


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (hypothesis runs many examples per test call)."""
    with tempfile.TemporaryDirectory(prefix="nomadml-fuzz-") as d:
        yield Path(d)


@contextmanager
def working_folder(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def clear(line: str) -> bool:
    """One readable line: no newline, carriage return, escape or other control character."""
    return not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in line)


def assert_no_crash(result: Result) -> None:
    """What would be a traceback in a real process is an exception CliRunner caught."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        shown = "".join(traceback.format_exception(*result.exc_info))
        raise AssertionError(f"a traceback would reach the operator:\n{shown}")
    assert result.exit_code in EXIT_CODES, f"exit {result.exit_code} is not an ExitCode"
    assert result.exit_code != int(ExitCode.INTERNAL), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def stderr_lines(result: Result) -> list[str]:
    text = result.stderr
    assert text == "" or text.endswith("\n"), f"stderr does not end a line: {text!r}"
    return text.split("\n")[:-1]


def rejection(result: Result) -> str:
    """Check a rejection (exit 2, one clear stderr line, no stdout); return its message."""
    assert_no_crash(result)
    assert result.exit_code == BAD_INPUT, (result.exit_code, result.stderr)
    assert result.stdout == "", f"output on rejection: {result.stdout!r}"
    lines = stderr_lines(result)
    assert len(lines) == 1, f"not one line: {result.stderr!r}"
    assert lines[0].startswith(PREFIX), lines[0]
    assert clear(lines[0]), f"not a clear line: {lines[0]!r}"
    return lines[0][len(PREFIX) :]


def load(path: Path) -> ModelSpec | SpecError:
    """The spec as nomadml sees it; anything but a SpecError propagates (a bug)."""
    try:
        return load_spec(path)
    except SpecError as err:
        return err


# -- a TOML writer (the standard library only reads TOML) ----------------------------------


def toml_str(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_str(k)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(type(v).__name__)  # pragma: no cover


def toml_doc(data: Mapping[str, Any], comment: str = "") -> str:
    lines = [f"# {comment}"] if comment else []
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()]
    return "\n".join(lines) + "\n"


# -- an HCL reader, far enough to prove a rendered job's structure -------------------------


def _hcl_string(text: str, i: int) -> tuple[str, int]:
    """Decode the quoted string whose body starts at `i` as Nomad's HCL2 scanner does."""
    out: list[str] = []
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while True:
        assert i < len(text), "unterminated string"
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        assert c not in "\r\n", f"raw line break in a quoted string near {text[i - 40 : i]!r}"
        if c == "\\":
            e = text[i + 1 : i + 2]
            if e in simple:
                out.append(simple[e])
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(e)
            digits = text[i + 2 : i + 2 + width] if width else ""
            assert width and re.fullmatch(r"[0-9A-Fa-f]+", digits) and len(digits) == width, (
                f"invalid HCL escape {text[i : i + 10]!r}"
            )
            cp = int(digits, 16)
            assert cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF, (
                f"HCL cannot encode {text[i : i + 10]!r} in UTF-8"
            )
            out.append(chr(cp))
            i += 2 + len(digits)
            continue
        if text.startswith(("$${", "%%{"), i):
            out.append(text[i + 1 : i + 3])
            i += 3
            continue
        assert not text.startswith(("${", "%{"), i), (
            f"interpolation or directive in a rendered string: {text[i : i + 30]!r}"
        )
        out.append(c)
        i += 1


def hcl_strings(text: str) -> list[str]:
    """Every string literal of a rendered job, decoded; fails unless the text is exactly
    one top-level `job "<id>" { ... }` block with balanced brackets and no heredoc."""
    top: list[str] = []
    strings: list[str] = []
    stack: list[str] = []
    pairs = {"}": "{", "]": "[", ")": "("}
    i = 0
    while i < len(text):
        c = text[i]
        if c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            assert end >= 0, "unterminated comment"
            i = end + 2
        elif c == '"':
            value, i = _hcl_string(text, i + 1)
            strings.append(value)
            if not stack:
                top.append('"')
        elif c in "{[(":
            if not stack:
                top.append(c)
            stack.append(c)
            i += 1
        elif c in "}])":
            assert stack and stack[-1] == pairs[c], f"unbalanced {c!r} at {i}"
            stack.pop()
            i += 1
        elif c.isspace():
            i += 1
        else:
            m = re.compile(r'[^\s"{}\[\]()#]+').match(text, i)
            assert m is not None
            token = m.group()
            assert "<<" not in token and "//" not in token and "/*" not in token, token
            if not stack:
                top.append(token)
            i = m.end()
    assert not stack, f"unclosed {stack}"
    assert top == ["job", '"', "{"], f"top level of the rendered file is {top}, not one job"
    return strings


# -- strategies ----------------------------------------------------------------------------

# argv can never hold NUL (C strings), and TOML can never hold lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=24)
KEYS = st.one_of(
    TEXT.filter(lambda k: len(k) <= 12),
    st.sampled_from(["name", "nmae", "cpu", "image", "env", "serving", "x.y", "a b", "\n", ""]),
)
TOML_SCALARS = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.sampled_from(
        [
            "30s",
            "0s",
            "1h30m",
            "-5s",
            "5",
            "",
            " ",
            "reference",
            "docker",
            "exec",
            "raw_exec",
            "/health",
            "*",
            "0 3 * * *",
            "NOMAD_X",
            "1" + "0" * 400 + "s",
            "9" * 5000 + "ms",
            "${x}",
            "../..",
        ]
    ),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=8,
)
FRAGMENTS = [
    "${",
    "%{",
    "{{",
    "}}",
    "$${",
    "%%{",
    "$",
    "%",
    "{",
    "}",
    '"',
    "'",
    "\\",
    "\\\\",
    "\\u0041",
    "\n",
    "\r",
    "\t",
    "\x00",
    "\x08",
    "\x0c",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\u2028",
    "\u00e9",
    "\U0001f600",
    "#",
    "//",
    "/*",
    "*/",
    "<<EOF\n",
    "EOF",
    "[[",
    "]]",
    "[%",
    "%]",
    "[#",
    "#]",
    '"\n}\njob "evil" {\n',
    '" }\n}\njob "evil" {\n  x = "',
    "\n}\n",
    "job",
    " = ",
    "${env.NOMAD_TOKEN}",
    '{{ with secret "x" }}{{ end }}',
    "%{ if true }x%{ endif }",
]
EVIL = (
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), TEXT.filter(lambda s: len(s) <= 4)),
        min_size=1,
        max_size=6,
    )
    .map("".join)
    .filter(bool)
)


def _schema_node(path: tuple[str, ...]) -> Any:
    """The schema entry at `path`: a Field, a nested table, or None (unknown / free-form)."""
    node: Any = SCHEMA
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _fits(kind: str, value: Any) -> bool:
    """The TOML type a field needs (the field's extra checks may still refuse the value)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("str", "duration"):
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return number
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    inner = kind[len("dict[str,") : -1]
    return isinstance(value, dict) and all(_fits(inner, v) for v in value.values())


def _paths(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for k, v in data.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _paths(v, (*prefix, k))


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        node = node[part]
    return node


def _parent(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    parent: dict[str, Any] = _get(data, path[:-1])
    return parent


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[str, bool]:
    """iris.toml with 1-3 fields replaced, deleted or added; True when it must be refused.
    The [templates] section is left alone: it names operator files, not input."""
    data = copy.deepcopy(SPEC_DATA)
    count = draw(st.integers(1, 3))
    must_fail = False
    for _ in range(count):
        paths = [p for p in _paths(data) if p[0] != "templates"]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "add":
            tables = [(), *(p for p in paths if isinstance(_get(data, p), dict))]
            table = draw(st.sampled_from(tables))
            key = draw(KEYS)
            target = _parent(data, (*table, key))
            if key in target:
                continue
            target[key] = draw(TOML_VALUES)
            node = _schema_node(table)
            bad = isinstance(node, Mapping) and key not in node
        elif not paths:
            continue
        else:
            path = draw(st.sampled_from(paths))
            node = _schema_node(path)
            if action == "delete":
                del _parent(data, path)[path[-1]]
                bad = path in (("model",), ("model", "name"))
            else:
                value = draw(TOML_VALUES)
                _parent(data, path)[path[-1]] = value
                bad = (isinstance(node, Field) and not _fits(node.kind, value)) or (
                    isinstance(node, Mapping) and not isinstance(value, dict)
                )
        must_fail = must_fail or (bad and count == 1)
    return toml_doc(data), must_fail


@st.composite
def garbled_specs(draw: st.DrawFn) -> tuple[str | bytes, bool]:
    """iris.toml's text cut, spliced or replaced; or random text or bytes."""
    how = draw(st.sampled_from(["bytes", "text", "insert", "cut", "line"]))
    if how == "bytes":
        return draw(st.binary(max_size=200)), False
    if how == "text":
        return draw(st.text(max_size=200)), False
    lines = SPEC_TEXT.splitlines(keepends=True)
    if how == "line":
        k = draw(st.integers(0, len(lines) - 1))
        lines[k] = draw(st.one_of(TEXT, st.sampled_from(FRAGMENTS))) + "\n"
        return "".join(lines), False
    i = draw(st.integers(0, len(SPEC_TEXT)))
    if how == "insert":
        piece = draw(st.one_of(st.text(max_size=20), st.sampled_from(FRAGMENTS)))
        return SPEC_TEXT[:i] + piece + SPEC_TEXT[i:], False
    j = draw(st.integers(i, min(len(SPEC_TEXT), i + 40)))
    return SPEC_TEXT[:i] + SPEC_TEXT[j:], False


PATHOLOGICAL_SPECS: list[tuple[str | bytes, bool]] = [
    (SPEC_TEXT + "\n[extra]\nbig = " + "9" * 5000 + "\n", True),  # past int's 4300 digits
    ("deep = " + "[" * 5000 + "]" * 5000 + "\n" + SPEC_TEXT, True),
    ("deep = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n" + SPEC_TEXT, True),
    (SPEC_TEXT.replace('min_healthy_time = "3s"', f'min_healthy_time = "1{"0" * 400}s"'), True),
    (SPEC_TEXT.replace('window = "20s"', f'window = "{"9" * 5000}s"'), True),
    ('"bad\\nkey" = 1\n' + SPEC_TEXT, True),
    (SPEC_TEXT.replace("[serving]\n", '[serving]\n"\\u001b[2J" = 1\n'), True),
    (SPEC_TEXT.replace('env = { LOG_LEVEL = "info" }', 'env = { "A\\nB" = "x" }'), True),
    (b"\xff\xfe\x00", True),
    ("", True),  # model.name is required
]


# -- 1. spec files --------------------------------------------------------------------------


@settings(FUZZ, max_examples=600)
@given(case=st.one_of(mutated_specs(), garbled_specs()))
@example(case=PATHOLOGICAL_SPECS[0])
@example(case=PATHOLOGICAL_SPECS[1])
@example(case=PATHOLOGICAL_SPECS[2])
@example(case=PATHOLOGICAL_SPECS[3])
@example(case=PATHOLOGICAL_SPECS[4])
@example(case=PATHOLOGICAL_SPECS[5])
@example(case=PATHOLOGICAL_SPECS[6])
@example(case=PATHOLOGICAL_SPECS[7])
@example(case=PATHOLOGICAL_SPECS[8])
@example(case=PATHOLOGICAL_SPECS[9])
def test_spec_files_are_rendered_or_refused_in_one_line_per_problem(
    case: tuple[str | bytes, bool],
) -> None:
    content, must_fail = case
    with scratch() as tmp:
        spec = tmp / "spec.toml"
        if isinstance(content, bytes):
            spec.write_bytes(content)
        else:
            spec.write_text(content, encoding="utf-8")
        before = snapshot(tmp)
        loaded = load(spec)

        rendered = cli(["render", str(spec), "--version", "1.0.0", "--image", IMAGE], tmp)
        assert_no_crash(rendered)
        event(f"render exit {rendered.exit_code}, must fail: {must_fail}")
        if rendered.exit_code == 0:
            assert not must_fail, f"accepted a spec that must be refused:\n{content!r}"
            assert rendered.stderr == ""
            hcl_strings(rendered.stdout)
        else:
            message = rejection(rendered)
            if isinstance(loaded, SpecError):
                # Other commands stop at the first problem, naming the file and the field.
                assert message == str(loaded)
                assert message.startswith(f"{spec}: ")

        validated = cli(["validate", str(spec)], tmp)
        assert_no_crash(validated)
        if isinstance(loaded, SpecError):
            # `validate` lists every problem, one `file: field: problem` line each.
            assert validated.exit_code == BAD_INPUT
            assert validated.stdout == ""
            lines = stderr_lines(validated)
            assert lines == [PREFIX + line for line in loaded.lines()]
            assert len(lines) == len(loaded.problems)
            for line in lines:
                assert line.startswith(f"{PREFIX}{spec}: ") and clear(line), repr(line)
        elif validated.exit_code != 0:
            rejection(validated)
        else:
            assert validated.stdout.startswith(f"{spec}: spec and templates ok")
        assert snapshot(tmp) == before  # nothing written next to the spec


# -- 2. version strings ---------------------------------------------------------------------

ALNUM = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def strict_version(v: str) -> bool:
    """MAJOR.MINOR.PATCH (ASCII digits, no leading zero, 9 digits at most) with an optional
    -prerelease of dot-separated ASCII letters and digits, 32 characters at most."""
    core, dash, pre = v.partition("-")
    parts = core.split(".")
    if len(parts) != 3:
        return False
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 9 or (len(p) > 1 and p[0] == "0"):
            return False
    if dash:
        idents = pre.split(".")
        if not 1 <= len(pre) <= 32 or not all(i and set(i) <= ALNUM for i in idents):
            return False
    return True


VALID_VERSIONS = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 999_999_999),
    st.integers(0, 999_999_999),
    st.integers(0, 999_999_999),
    st.one_of(
        st.just(""), st.from_regex(r"[0-9A-Za-z]{1,8}(\.[0-9A-Za-z]{1,8}){0,2}", fullmatch=True)
    ),
)


@st.composite
def near_versions(draw: st.DrawFn) -> str:
    """A valid version with one character inserted, replaced or removed."""
    v = draw(VALID_VERSIONS)
    i = draw(st.integers(0, len(v)))
    c = draw(
        st.one_of(
            st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
            st.sampled_from(list("0.-+/\\ \n\t\u0661\uff11\u00b2")),
        )
    )
    how = draw(st.sampled_from(["insert", "replace", "remove"]))
    if how == "insert":
        return v[:i] + c + v[i:]
    if how == "replace":
        return v[:i] + c + v[i + 1 :]
    return v[:i] + v[i + 1 :]


VERSIONS = st.one_of(
    TEXT,
    st.text(st.sampled_from(list("0123456789.-+/\\ abv\n\r\t\x1b")), max_size=16),
    st.text(st.characters(exclude_characters="\x00"), min_size=200, max_size=3000),
    VALID_VERSIONS,
    near_versions(),
    st.sampled_from(
        [
            "../../etc/passwd",
            "1.0.0/../..",
            "1.0.0; rm -rf /",
            "$(reboot)",
            "${x}",
            "1.0.0\n",
            " 1.0.0",
            "v1.0.0",
            "01.0.0",
            "1.0",
            "1.0.0.0",
            "1.0.0-",
            "1.0.0-rc..1",
            "1.0.0-" + "a" * 33,
            "1.0.0+build",
            "1000000000.0.0",
            "\u0661.0.0",
            "1\u0661.0.0",
            "\uff11.0.0",
            "",
        ]
    ),
)


@settings(FUZZ, max_examples=500)
@given(version=VERSIONS)
@example(version="1\u0661.0.0")  # Arabic-indic digit: Python's \d takes it, paths do not
@example(version="999999999.999999999.999999999-" + "a" * 32)
def test_version_strings_on_render(version: str) -> None:
    with scratch() as tmp:
        result = cli(["render", str(SPEC), "--version", version, "--image", IMAGE], tmp)
        event(f"strict version: {strict_version(version)}")
        if strict_version(version):
            assert_no_crash(result)
            assert result.exit_code == 0, result.stderr
            assert f'job "iris-v{int(version.split(".")[0])}"' in result.stdout
            assert f'"nomadml.version" = "{version}"' in result.stdout
            hcl_strings(result.stdout)
        else:
            message = rejection(result)
            assert message.startswith("--version: invalid model version "), message


@pytest.mark.parametrize("command", ["rollback", "model register"])
@settings(FUZZ, max_examples=200)
@given(version=VERSIONS)
@example(version="1\u0661.0.0")
@example(version="1.0")
def test_version_strings_are_checked_before_nomad(command: str, version: str) -> None:
    """A version that can never exist is refused offline, before Nomad is asked anything."""
    with scratch() as tmp:
        model_dir = tmp / "model"
        model_dir.mkdir()
        (model_dir / "model.json").write_text('{"w": [1, 2, 3]}')
        (model_dir / METADATA).write_text(json.dumps(VALID_METADATA))
        before = snapshot(tmp)
        if command == "rollback":
            args = ["rollback", "iris-v1", "--to", version]
            option = "--to"
        else:
            args = ["model", "register", str(model_dir), "--name", "iris", "--version", version]
            option = "--version"
        result = cli(args, tmp)
        if strict_version(version):
            assert_no_crash(result)
            assert result.exit_code == int(ExitCode.NOMAD_UNREACHABLE), result.stderr
        else:
            message = rejection(result)
            assert message.startswith(f"{option}: invalid model version "), message
        assert snapshot(tmp) == before


# -- 3. template values ---------------------------------------------------------------------

# Fields whose values reach the service job, how to set them, and whether a value can be
# refused by the schema (health_path must be an absolute path without spaces).
INJECTIONS = ["command", "args", "env", "image", "datacenters", "health_path", "description"]


@st.composite
def injected_specs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    data = copy.deepcopy(SPEC_DATA)
    values = draw(st.dictionaries(st.sampled_from(INJECTIONS), EVIL, min_size=1))
    serving = data["serving"]
    for field, value in values.items():
        if field == "command":
            serving["command"] = value
        elif field == "args":
            serving["args"] = [value, "--" + value]
        elif field == "env":
            serving["env"] = {"EVIL": value, "LOG_LEVEL": value}
        elif field == "image":
            serving["image"] = value
        elif field == "datacenters":
            data["placement"]["datacenters"] = [value]
        elif field == "health_path":
            values[field] = serving["health_path"] = "/" + value
        else:
            data["model"]["description"] = value
    # The retraining job renders its image only under docker, and carries the spec text.
    retraining = data["retraining"]
    retraining["driver"] = draw(st.sampled_from(["docker", "raw_exec"]))
    retraining["image"] = draw(EVIL)
    retraining["command"] = [draw(EVIL), draw(EVIL)]
    retraining["args"] = [draw(EVIL)]
    return data, values


@settings(FUZZ, max_examples=400)
@given(
    case=injected_specs(),
    comment=EVIL.map(lambda s: "".join(c for c in s if clear(c))),
    image_repo=EVIL,
    serving_repo=st.none() | EVIL,
)
@example(
    case=(
        {**SPEC_DATA, "serving": {**SPEC_DATA["serving"], "command": "python3\x08\x0c\U0001f600"}},
        {"command": "python3\x08\x0c\U0001f600"},
    ),
    comment="\U0001f600 ${x}",
    image_repo='"\n}\njob "evil" {\n',
    serving_repo="${env.NOMAD_TOKEN}",
)
def test_template_values_are_escaped_or_refused(
    case: tuple[dict[str, Any], dict[str, str]],
    comment: str,
    image_repo: str,
    serving_repo: str | None,
) -> None:
    data, values = case
    image = f"{image_repo}@{DIGEST}"
    # --serving-image (pinned, so never looked up) replaces the spec's serving.image.
    serving = [] if serving_repo is None else ["--serving-image", f"{serving_repo}@{DIGEST}"]
    with scratch() as tmp:
        spec = tmp / "spec.toml"
        spec.write_text(toml_doc(data, comment), encoding="utf-8")
        args = ["render", str(spec), "--version", "1.0.0", "--image", image]
        result = cli([*args, *serving], tmp)
        # The only value the schema refuses here: a health path with a space in it.
        event(f"render exit {result.exit_code}")
        if " " in values.get("health_path", ""):
            assert rejection(result).startswith(f"{spec}: serving.health_path: ")
            return
        assert_no_crash(result)
        assert result.exit_code == 0, result.stderr
        strings = hcl_strings(result.stdout)
        for field, value in values.items():
            if field == "description" or (field == "image" and serving):
                continue  # not part of the service job
            assert value in strings, f"{field} = {value!r} is not one string of the job"
        assert image in strings and all(s in strings for s in serving[1:])

        # The retraining job (rendered by `validate` and `schedule-retraining`).
        loaded = load_spec(spec)
        hcl = render_retraining(loaded)
        strings = hcl_strings(hcl)
        assert loaded.text in strings  # the job carries its spec, comment and all
        training = data["retraining"]
        for value in [*training.get("command", []), *training.get("args", [])]:
            assert value in strings
        if training["driver"] == "docker":
            assert training["image"] in strings


# -- 4. model metadata files ----------------------------------------------------------------


def valid_metadata(raw: bytes) -> bool:
    """metadata.json as documented: an object with metrics (finite numbers), signature
    ({"inputs": [...], "outputs": [...]}) and optionally notes (a string)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    metrics, signature = data.get("metrics"), data.get("signature")
    return (
        isinstance(metrics, dict)
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in metrics.values()
        )
        and isinstance(signature, dict)
        and isinstance(signature.get("inputs"), list)
        and isinstance(signature.get("outputs"), list)
        and isinstance(data.get("notes", ""), str)
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
METADATA_LIKE = st.fixed_dictionaries(
    {
        "metrics": st.one_of(
            st.dictionaries(TEXT, st.floats() | st.integers(), max_size=3),
            st.dictionaries(TEXT, JSON_VALUES, min_size=1, max_size=3),
            JSON_VALUES,
        ),
        "signature": st.one_of(
            st.fixed_dictionaries(
                {"inputs": st.lists(JSON_VALUES, max_size=2)},
                optional={"outputs": st.one_of(st.lists(JSON_VALUES, max_size=2), JSON_VALUES)},
            ),
            JSON_VALUES,
        ),
    },
    optional={"notes": st.one_of(TEXT, JSON_VALUES), "training_data": JSON_VALUES},
)
VALID_BYTES = json.dumps(VALID_METADATA).encode()


@st.composite
def metadata_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(kind, content): kind is "file", "missing" or "directory"."""
    how = draw(st.sampled_from(["json", "like", "bytes", "text", "cut", "toml", "special", "gone"]))
    if how == "json":
        return "file", json.dumps(draw(JSON_VALUES)).encode()
    if how == "like":
        return "file", json.dumps(draw(METADATA_LIKE)).encode()
    if how == "bytes":
        return "file", draw(st.binary(max_size=100))
    if how == "text":
        return "file", draw(st.text(max_size=100)).encode("utf-8", "surrogatepass")
    if how == "cut":
        return "file", VALID_BYTES[: draw(st.integers(0, len(VALID_BYTES) - 1))]
    if how == "toml":
        return "file", toml_doc(VALID_METADATA).encode()
    if how == "gone":
        return draw(st.sampled_from(["missing", "directory"])), b""
    return "file", draw(st.sampled_from(PATHOLOGICAL_METADATA))


PATHOLOGICAL_METADATA = [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder's recursion limit
    b'{"metrics": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"metrics": {"accuracy": NaN}, "signature": {"inputs": [], "outputs": []}}',
    b'{"metrics": {"loss": -Infinity}, "signature": {"inputs": [], "outputs": []}}',
    b'{"metrics": {"a": 1' + b"0" * 5000 + b'}, "signature": {"inputs": [], "outputs": []}}',
    b"\xef\xbb\xbf" + VALID_BYTES,  # a byte-order mark
    json.dumps(VALID_METADATA).encode("utf-16"),
    b'{"metrics": {"a": true}, "signature": {"inputs": [], "outputs": []}}',
    b'{"metrics": {}, "signature": {"inputs": {}, "outputs": []}}',
    b'{"metrics": {}, "signature": {"inputs": [], "outputs": []}, "notes": 3}',
]


@settings(FUZZ, max_examples=500)
@given(metadata=metadata_files(), bump=st.booleans())
@example(metadata=("file", PATHOLOGICAL_METADATA[0]), bump=False)
@example(metadata=("file", PATHOLOGICAL_METADATA[1]), bump=True)
@example(metadata=("file", PATHOLOGICAL_METADATA[2]), bump=False)
@example(metadata=("file", PATHOLOGICAL_METADATA[3]), bump=False)
@example(metadata=("directory", b""), bump=False)
@example(metadata=("missing", b""), bump=True)
@example(metadata=("file", VALID_BYTES), bump=False)
def test_malformed_metadata_is_refused_before_docker_or_nomad(
    metadata: tuple[str, bytes], bump: bool
) -> None:
    kind, content = metadata
    with scratch() as tmp:
        model_dir = tmp / "model"
        model_dir.mkdir()
        (model_dir / "model.json").write_text('{"w": [1, 2, 3]}')
        where = model_dir / METADATA
        if kind == "file":
            where.write_bytes(content)
        elif kind == "directory":
            where.mkdir()
        before = snapshot(tmp)
        version = ["--bump", "minor"] if bump else ["--version", "1.0.0"]
        result = cli(["model", "register", str(model_dir), "--name", "iris", *version], tmp)
        event(f"metadata {kind}, well-formed: {kind == 'file' and valid_metadata(content)}")
        if kind == "file" and valid_metadata(content):
            # Well-formed: the next step asks the model registry, which is unreachable.
            assert_no_crash(result)
            assert result.exit_code == int(ExitCode.NOMAD_UNREACHABLE), result.stderr
        else:
            message = rejection(result)
            assert message.startswith(f"{where}: "), message
        assert snapshot(tmp) == before, "something was written for a refused model"


# -- 5. command-line arguments --------------------------------------------------------------


def _commands() -> list[tuple[list[str], click.Command]]:
    out: list[tuple[list[str], click.Command]] = [([], main)]
    top = all_commands()
    assert len(top) >= 12, sorted(top)  # every command, the lazily loaded ones included
    for name, command in sorted(top.items()):
        out.append(([name], command))
    for name, command in sorted(model_group.commands.items()):
        out.append((["model", name], command))
    return out


COMMANDS = _commands()
ARG_WORDS = [
    str(SPEC),
    "1.0.0",
    "1.0",
    "v1",
    "iris",
    "iris-v1",
    "Iris",
    IMAGE,
    "127.0.0.1:5000/nomadml/models/iris:1.0.0",
    "0",
    "1",
    "-1",
    "nan",
    "inf",
    "1e309",
    "",
    " ",
    ".",
    "..",
    "/",
    "major",
    "patch",
    "true",
    "2026-01-01T00:00:00Z",
    "yesterday",
    "--",
    "-",
    "-h",
    "--help",
    "--json",
    "--bogus",
    "--version",
    "-x",
    "--timeout=0",
    "model",
    "render",
]
ARG_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    words, command = draw(st.sampled_from(COMMANDS))
    options = sorted(
        o
        for p in command.params
        if isinstance(p, click.Option)
        for o in (*p.opts, *p.secondary_opts)
    )
    token = st.one_of(ARG_TEXT, st.sampled_from(ARG_WORDS), st.sampled_from(options or ["--x"]))
    return [*words, *draw(st.lists(token, max_size=7))]


@settings(FUZZ, max_examples=800)
@given(args=command_lines())
@example(args=["status", "a", "b\nc"])
@example(args=["status", "--a\nb"])
@example(args=["history", "iris\x1b[2J"])
@example(args=["model", "history", "iris", "--at", "not\na date"])
def test_command_lines_never_crash_and_errors_are_one_line(args: list[str]) -> None:
    with scratch() as tmp:
        cwd = tmp / "cwd"
        cwd.mkdir()
        with working_folder(cwd):  # relative paths among the arguments land here
            result = cli(args, tmp)
        assert_no_crash(result)
        assert list(cwd.iterdir()) == [], "a command wrote into the working folder"
        event(f"exit {result.exit_code}")
        lines = stderr_lines(result)
        if result.exit_code == 0:
            assert lines == [], result.stderr
        else:
            assert len(lines) <= 1, f"more than one line: {result.stderr!r}"
            assert all(clear(line) for line in lines), f"not a clear line: {result.stderr!r}"
