"""Errors a user can fix, and how the CLI turns any exception into one line (`pipelines.cli.main`).

    raise UserError("no recipe named 'demo2'", "--recipe", "name a bundled recipe (demo, pixelrefer-2.2m) or a YAML file")
    # pixelrefer prints: error: no recipe named 'demo2', --recipe, name a bundled recipe (...) or a YAML file

User errors (exit status 2): UserError, a missing file, a malformed YAML or JSON file, an unknown
registry name. Anything else is an internal error (exit status 1), shown as one line too unless
`pixelrefer --debug` asks for the traceback.
"""

from __future__ import annotations

import sys


class UserError(Exception):
    """A problem the user can fix; its message is `<what>, <where>, <fix>`."""

    def __init__(self, what: str, where: str, fix: str):
        super().__init__(f"{what}, {where}, {fix}")
        self.what, self.where, self.fix = what, where, fix


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _yaml_message(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return f"invalid YAML: {err}"
    problem = err.problem + (f" ({err.context})" if err.context else "")
    where = f"line {mark.line + 1} column {mark.column + 1}"
    if not mark.name.startswith("<"):  # "<unicode string>": the loader was given text, not the file
        where = f"{mark.name} {where}"
    return f"invalid YAML: {problem}, {where}, fix the YAML there"


def describe(err: Exception) -> tuple[str, int]:
    """(one-line message without the `error: ` prefix, exit status) for an exception that ended a verb."""
    import yaml  # here, not at the top: `pixelrefer --help` imports this module and stays instant

    from sources.jsonarray import JsonFileError
    from train.config import ConfigError

    if isinstance(err, (UserError, JsonFileError, ConfigError)):
        return _one_line(str(err)), 2
    if isinstance(err, yaml.YAMLError):
        return _one_line(_yaml_message(err)), 2
    if isinstance(err, FileNotFoundError):
        if err.filename is None:  # raised with a message of its own (what is missing and what to run)
            return _one_line(str(err)), 2
        return _one_line(f"no such file or folder, {err.filename}, check the path"), 2
    if isinstance(err, KeyError) and _raised_in(err, "sources.registry"):
        return _one_line(str(err.args[0])), 2  # the registry's message lists the known names
    return _one_line(f"internal error {type(err).__name__}: {err} (rerun with --debug for the traceback)"), 1


def _raised_in(err: Exception, module: str) -> bool:
    """Whether the innermost frame of `err`'s traceback belongs to `module` (a lookup, not a bug elsewhere)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == module


def print_error(err: Exception) -> int:
    """Print `error: <one line>` to stderr; return the exit status."""
    message, status = describe(err)
    print(f"error: {message}", file=sys.stderr)
    return status
