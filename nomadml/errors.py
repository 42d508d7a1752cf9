"""The one exception root and the one exit-code enum.

    NomadMLError                      every error nomadml reports to an operator
    ├── BadInput                      a spec, template, version or argument is wrong
    │   ├── SpecError                 `file: field.path: what is wrong`
    │   └── TemplateError             `template:line: what is wrong` (+ offending text)
    ├── NomadUnreachable              no answer from the Nomad HTTP API
    ├── NomadAPIError                 Nomad answered with an error (status + its own message)
    │   └── Conflict                  a check-and-set write lost a race
    ├── NotOwned                      a job exists that nomadml did not create
    ├── ModelIntegrityError           a model file does not match its manifest
    ├── StackError                    the local stack / docker engine is not usable
    ├── MissingExtra                  an optional extra is not installed (its pip command)
    └── InternalError                 anything unexpected: a bug, reported as one line

Each error renders as one line (``str(err)``); the CLI maps it to ``exit_code``.
``as_operator_error`` turns any exception into one of these.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, shared by every command (documented in `nomadml --help`)."""

    OK = 0
    CHANGES = 1  # plan: the job would change
    BAD_INPUT = 2
    NOMAD_UNREACHABLE = 3
    NOMAD_ERROR = 4
    CONFLICT = 5
    ROLLED_BACK = 6
    FAILED = 7  # failed, nothing rolled back
    AWAITING_PROMOTION = 8
    TIMEOUT = 9
    NOT_OWNED = 10
    INTEGRITY = 11
    STACK = 12
    MISSING_EXTRA = 13  # an optional part of nomadml is not installed (pip install ...)
    INTERRUPTED = 130
    INTERNAL = 70


class NomadMLError(Exception):
    """Root of every error nomadml reports; ``str()`` is one operator-readable line."""

    exit_code: ExitCode = ExitCode.INTERNAL


class BadInput(NomadMLError):
    exit_code = ExitCode.BAD_INPUT


class SpecError(BadInput):
    """A model spec is invalid: names the file and the field path."""

    def __init__(
        self, source: str, field: str, problem: str, problems: list[tuple[str, str]] | None = None
    ) -> None:
        self.source, self.field, self.problem = source, field, problem
        self.problems = problems or [(field, problem)]
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")

    def lines(self) -> list[str]:
        """Every problem found, one `file: field: problem` line each."""
        return [
            f"{self.source}: {f}: {p}" if f else f"{self.source}: {p}" for f, p in self.problems
        ]


class TemplateError(BadInput):
    """A template failed to render: names the template, line and offending text."""

    def __init__(self, template: str, line: int | None, problem: str, text: str = "") -> None:
        self.template, self.line, self.problem, self.text = template, line, problem, text
        where = f"{template}:{line}" if line else template
        shown = f" (in: {text.strip()})" if text.strip() else ""
        super().__init__(f"{where}: {problem}{shown}")


class NomadUnreachable(NomadMLError):
    exit_code = ExitCode.NOMAD_UNREACHABLE

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        super().__init__(f"cannot reach Nomad at {address}: {reason}")


class NomadAPIError(NomadMLError):
    exit_code = ExitCode.NOMAD_ERROR

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method, self.path, self.status, self.message = method, path, status, message
        first = " ".join(message.strip().split())[:300]
        super().__init__(f"Nomad refused {method} {path} (HTTP {status}): {first}")


class Conflict(NomadAPIError):
    exit_code = ExitCode.CONFLICT


class NotOwned(NomadMLError):
    exit_code = ExitCode.NOT_OWNED


class ModelIntegrityError(NomadMLError):
    exit_code = ExitCode.INTEGRITY


class StackError(NomadMLError):
    exit_code = ExitCode.STACK


class OperationFailed(NomadMLError):
    """A one-shot operation Nomad ran (e.g. a volume prune) failed somewhere."""

    exit_code = ExitCode.FAILED


class CannotBePlaced(NomadMLError):
    """No client can ever run a job as rendered (e.g. none allows the docker host-path
    volumes it mounts): nothing was registered."""

    exit_code = ExitCode.FAILED


class OperationTimeout(NomadMLError):
    exit_code = ExitCode.TIMEOUT


class MissingExtra(NomadMLError):
    """A command needs an optional extra that is not installed: names the pip command."""

    exit_code = ExitCode.MISSING_EXTRA

    def __init__(self, command: str, extra: str, module: str) -> None:
        self.extra, self.module = extra, module
        super().__init__(
            f"{command} needs {module}, which is not installed: pip install 'nomadml[{extra}]'"
        )


class InternalError(NomadMLError):
    """An exception nomadml did not expect: one line, exit 70, the traceback only
    under --debug. Never exit 1, which means "the plan has changes"."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, err: BaseException) -> None:
        self.original = err
        what = " ".join(str(err).split())[:300] or "no message"
        super().__init__(
            f"internal error: {type(err).__name__}: {what}; rerun with --debug for the traceback"
        )


def as_operator_error(err: Exception) -> NomadMLError:
    """The operator's view of any exception. nomadml's own errors stay as they are; the
    bundled installer's errors (its own classes: that program imports nothing
    from nomadml) keep their meaning: integrity stays 11, bad
    input 2; anything else is an internal error."""
    if isinstance(err, NomadMLError):
        return err
    from nomadml.bundled.bootstrap import BootstrapError, IntegrityError

    if isinstance(err, IntegrityError):
        return ModelIntegrityError(str(err))
    if isinstance(err, BootstrapError):
        return BadInput(str(err))
    return InternalError(err)
