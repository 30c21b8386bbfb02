"""What every command shares, as kubectl users expect it: `-f FILE` / `-f -`, `-o table|wide|json|yaml`, times in
RFC 3339, tables that fit the terminal."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from mlplacement.adapters.files import dump_plain
from mlplacement.core.explain import table

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("table", "wide", "json", "yaml")


PROPOSED_POLICY_OPTION = click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="The proposed PlacementPolicy ('-' reads standard input).",
)
MAX_MOVES_OPTION = click.option(
    "--max-moves", type=click.IntRange(min=0), help="Exit 3 when more running workloads would move than this."
)


def output_option(*choices: str) -> Callable[[F], F]:
    """`-o/--output`: table (fits the terminal), wide (nothing cut), json or yaml (the same document)."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(choices or OUTPUTS),
        default="table",
        show_default=True,
        help="table fits the terminal (long reasons wrap); wide prints every line whole; json and yaml are for "
        "scripts (one document, the same shape in both).",
    )


def filename_option(what: str) -> Callable[[F], F]:
    """`-f/--filename FILE` (repeatable, `-` for standard input), as kubectl; joins any positional FILES."""
    return click.option(
        "-f",
        "--filename",
        "filenames",
        multiple=True,
        type=click.Path(path_type=Path, allow_dash=True),
        help=f"{what} (repeatable; a directory is walked for *.yaml; '-' reads standard input).",
    )


def inputs(files: Sequence[Path], filenames: Sequence[Path], what: str = "FILES or -f FILE") -> list[Path]:
    """The positional files and the -f ones, in order; bad usage when there are none."""
    paths = [*files, *filenames]
    if not paths:
        raise click.UsageError(f"give {what} ('-' reads standard input)")
    return paths


def emit(document: Any, output: str) -> bool:
    """Print ``document`` when ``output`` is json or yaml; False when the caller prints its table instead."""
    if output == "json":
        click.echo(json.dumps(document, indent=2))
        return True
    if output == "yaml":
        click.echo(dump_plain([document]), nl=False)
        return True
    return False


def fitted_table(headers: Sequence[str], rows: Sequence[Sequence[str]], output: str) -> str:
    """A table whose last column (the reason, the message) wraps to the terminal's width; `-o wide` keeps it whole."""
    return table(headers, rows, terminal_columns(output))


def terminal_columns(output: str) -> int | None:
    """The terminal's width for tables to fit (160 without one: a pipe, CI); None for `-o wide` (nothing wraps)."""
    return None if output == "wide" else shutil.get_terminal_size(fallback=(160, 24)).columns


class Moment(click.ParamType[datetime]):
    """A time as people and scripts write it: 2026-11-22, 2026-11-22T08:00, RFC 3339 with Z or an offset.
    Without a zone it is UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            self.fail(f"{text!r} is not a time: use 2026-11-22, 2026-11-22T08:00 or 2026-11-22T08:00:00Z", param, ctx)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 workload', '2 workloads', '0 moves'."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
