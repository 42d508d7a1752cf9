"""Render job templates: a pure function of (template name, values) to HCL text.

Templates run in Jinja's sandbox with strict undefined variables, and use
delimiters that cannot collide with what Nomad job files already contain:
`[[ expr ]]`, `[% statement %]`, `[# comment #]` — Nomad's `{{ }}` (consul-template
in `template` blocks) and HCL's `${ }` pass through as plain text.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from nomadml.errors import TemplateError

# The shipped templates are package resources; an operator's template may extend one
# by its namespaced name (`nomadml/model-service.nomad.hcl`), even from a file that
# has the shipped file's own name.
SHIPPED_NAMESPACE = "nomadml"


def shipped_templates() -> Path:
    """The folder of the templates shipped inside the nomadml package."""
    return Path(str(importlib.resources.files("nomadml") / "templates"))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII except " and backslash


def _hcl_chars(value: str) -> str:
    """The inside of an HCL string literal. Like JSON's ASCII-only strings, but HCL
    has no \\b or \\f and wants \\UXXXXXXXX, not a surrogate pair, beyond U+FFFF;
    lone surrogates have no UTF-8 at all."""
    if _PLAIN.fullmatch(value):
        return value  # the common case: nothing to escape
    out = []
    for c in value:
        code = ord(c)
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0x20 <= code < 0x7F:
            out.append(c)
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"{value!r} is not valid Unicode (a lone surrogate)")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def hcl(value: Any) -> str:
    """An HCL literal for a Python value; strings never start an interpolation."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        # HCL2 string templates treat ${ and %{ as interpolation: escape them.
        return '"' + _hcl_chars(value).replace("${", "$${").replace("%{", "%%{") + '"'
    if isinstance(value, Mapping):
        inner = ", ".join(f"{hcl(str(k))} = {hcl(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(hcl(v) for v in value) + "]"
    if value is None:
        return "null"
    raise TypeError(f"no HCL literal for {type(value).__name__}")


def environment(search_path: Sequence[Path] = ()) -> jinja2.Environment:
    """A sandboxed environment; operator folders come before the shipped templates.
    One per search path, reused: compiled templates live in it (Jinja still checks
    the files' modification times, so edited templates are picked up)."""
    return _environment(tuple(str(p) for p in search_path))


@functools.lru_cache(maxsize=32)
def _environment(search_path: tuple[str, ...]) -> jinja2.Environment:
    shipped = jinja2.FileSystemLoader(str(shipped_templates()))
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(list(search_path)),
                jinja2.PrefixLoader({SHIPPED_NAMESPACE: shipped}),
                shipped,
            ]
        ),
        undefined=jinja2.StrictUndefined,
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["hcl"] = hcl
    return env


def render(template: str, values: Mapping[str, Any], search_path: Sequence[Path] = ()) -> str:
    """Render `template` with `values`; errors name the template file and line."""
    env = environment(search_path)
    try:
        return env.get_template(template).render(**values)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(
            err.filename or err.name or template,
            err.lineno,
            err.message or "syntax error",
            (err.source and _line(err.source, err.lineno)) or "",
        ) from None
    except jinja2.TemplateNotFound as err:
        searched = ", ".join(_folders(search_path))
        if err.name == template:
            raise TemplateError(template, None, "template not found in " + searched) from None
        # An [% include %], [% import %] or [% extends %] names a missing file: say where.
        name, line, text = _locate(search_path, template, err)
        raise TemplateError(
            name, line, f"template {str(err.name)!r} not found in {searched}", text
        ) from None
    except RecursionError:
        # An operator's file that extends (or includes) its own name finds itself first.
        raise TemplateError(
            template,
            None,
            "a template extends or includes itself; to extend the shipped template, "
            f'write [% extends "{SHIPPED_NAMESPACE}/{template}" %] (or give your file '
            "another name)",
        ) from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as err:
        # Runtime failures inside a template (undefined, sandbox, 1/0, ...): never a traceback.
        name, line, text = _locate(search_path, template, err)
        raise TemplateError(name, line, str(err), text) from None


def _folders(search_path: Sequence[Path]) -> list[str]:
    return [*(str(p) for p in search_path), str(shipped_templates())]


def _line(source: str, lineno: int | None) -> str:
    lines = source.splitlines()
    return lines[lineno - 1] if lineno and 0 < lineno <= len(lines) else ""


def _locate(
    search_path: Sequence[Path], template: str, err: BaseException
) -> tuple[str, int | None, str]:
    """Find the template file and line of a runtime error.

    Jinja rewrites tracebacks so that template frames carry the template's file
    name and line number; the innermost such frame is where the error is."""
    # Jinja normalises template file names (os.path.normpath): compare like with like.
    folders = [os.path.join(os.path.normpath(p), "") for p in _folders(search_path)]
    found: tuple[str, int | None, str] = (template, None, "")
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if any(filename.startswith(folder) for folder in folders):
            source = Path(filename).read_text(encoding="utf-8")
            found = (filename, tb.tb_lineno, _line(source, tb.tb_lineno))
        tb = tb.tb_next
    return found
