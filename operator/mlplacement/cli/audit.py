"""`mlplacement audit`: why a workload is where it is, from the operator's audit records."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from pydantic import ValidationError

from mlplacement.adapters.files import read_text
from mlplacement.api.audit import AUDIT_API_VERSION, AuditAction, AuditRecord
from mlplacement.api.errors import describe_validation_error
from mlplacement.cli import cli
from mlplacement.cli.common import Moment, emit, fitted_table, output_option, plural

MOVES = ("Moved", "Stopped", "Preempted", "Interrupted")


ACTIONS = tuple(action.value for action in AuditAction)


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True), default="-")
@click.option("--workload", "workload_key", help="NAMESPACE/NAME: why is it where it is (its records, newest last).")
@click.option("--since", type=Moment(), help="Only records at or after this time (2026-11-22T08:00, RFC 3339; UTC).")
@click.option("--until", type=Moment(), help="Only records before this time.")
@click.option("--moves", is_flag=True, help="Only what moved: Moved, Stopped, Preempted, Interrupted.")
@click.option(
    "--action",
    "actions",
    multiple=True,
    type=click.Choice(ACTIONS),
    help="Only these actions (repeatable).",
)
@output_option()
@click.option("--schema", is_flag=True, help="Print the audit record's JSON Schema and exit.")
def audit(
    source: Path,
    workload_key: str | None,
    since: datetime | None,
    until: datetime | None,
    moves: bool,
    actions: tuple[str, ...],
    output: str,
    schema: bool,
) -> None:
    """Read audit records from SOURCE (a file, or standard input by default): JSON lines of the logger
    mlplacement.audit; other log lines are skipped. For example
    `kubectl -n mlplacement-system logs deploy/mlplacement | mlplacement audit --workload team-a/trainer`."""

    if schema:
        click.echo(json.dumps(AuditRecord.model_json_schema(by_alias=True), indent=2))
        return
    records: list[AuditRecord] = []
    invalid: list[str] = []
    for number, line in enumerate(read_text(source).splitlines(), start=1):
        if not line.lstrip().startswith("{"):
            continue  # another logger's line
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError as exc:
            if AUDIT_API_VERSION in line:  # ours, and not readable: say so rather than lose it quietly
                invalid.append(f"line {number}: {describe_validation_error(exc)}")
    if invalid:
        click.echo(
            f"warning: skipped {plural(len(invalid), 'unreadable audit record')} (first: {invalid[0]})", err=True
        )
    wanted = set(actions) | (set(MOVES) if moves else set())
    chosen = [
        r
        for r in records
        if (workload_key is None or f"{r.object.namespace}/{r.object.name}" == workload_key)
        and (not wanted or r.action.value in wanted)
        and (since is None or r.time >= since)
        and (until is None or r.time < until)
    ]
    chosen.sort(key=lambda r: r.time)
    if emit([r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in chosen], output):
        return
    if workload_key is not None:
        where = next((r for r in reversed(chosen) if r.action.value in ("Placed", "Moved", "Stopped", "Refused")), None)
        if where is None:
            click.echo(f"{workload_key}: no placement on record")
        elif where.target is not None:
            click.echo(
                f"{workload_key} runs on {where.target.kind} {where.target.name} ({where.target.region}) since "
                f"{where.time:%Y-%m-%dT%H:%M:%SZ}: {where.message}"
            )
        else:
            click.echo(f"{workload_key}: {where.action.value} at {where.time:%Y-%m-%dT%H:%M:%SZ}: {where.message}")
    rows = [
        [
            f"{r.time:%Y-%m-%dT%H:%M:%SZ}",
            f"{r.object.namespace}/{r.object.name}",
            r.action.value,
            r.reason,
            f"{r.previous_target.kind}/{r.previous_target.name}" if r.previous_target else "-",
            f"{r.target.kind}/{r.target.name}" if r.target else "-",
            r.message,
        ]
        for r in chosen
    ]
    if not rows:
        click.echo(f"no audit record matches ({plural(len(records), 'record')} read)")
        return
    click.echo(fitted_table(["TIME", "WORKLOAD", "ACTION", "REASON", "FROM", "TO", "MESSAGE"], rows, output))
    click.echo(f"\n{len(chosen)} of {plural(len(records), 'record')}")
