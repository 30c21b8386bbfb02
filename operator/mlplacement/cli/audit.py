"""`mlplacement audit`: why a workload is where it is, from the operator's audit records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import ValidationError

from mlplacement.cli import cli
from mlplacement.core.explain import table

MOVES = ("Moved", "Stopped", "Preempted", "Interrupted")


@cli.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--workload", "workload_key", help="NAMESPACE/NAME: why is it where it is (its records, newest last).")
@click.option("--since", type=click.DateTime(), help="Only records at or after this time (UTC unless it says).")
@click.option("--until", type=click.DateTime(), help="Only records before this time.")
@click.option("--moves", is_flag=True, help="Only what moved: Moved, Stopped, Preempted, Interrupted.")
@click.option("--action", "actions", multiple=True, help="Only these actions (repeatable): Placed, Refused, ...")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--schema", is_flag=True, help="Print the audit record's JSON Schema and exit.")
def audit(
    source: Any,
    workload_key: str | None,
    since: datetime | None,
    until: datetime | None,
    moves: bool,
    actions: tuple[str, ...],
    output: str,
    schema: bool,
) -> None:
    """Read audit records (JSON lines of the logger mlplacement.audit; other lines are skipped), e.g.
    `kubectl -n mlplacement logs deploy/mlplacement | mlplacement audit --workload team-a/trainer`."""

    from mlplacement.api.audit import AuditRecord

    if schema:
        click.echo(json.dumps(AuditRecord.model_json_schema(by_alias=True), indent=2))
        return
    records: list[AuditRecord] = []
    for line in source:
        if not line.lstrip().startswith("{"):
            continue
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError:
            continue
    wanted = set(actions) | (set(MOVES) if moves else set())

    def at(moment: datetime | None) -> datetime | None:
        return None if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    start, end = at(since), at(until)
    chosen = [
        r
        for r in records
        if (workload_key is None or f"{r.object.namespace}/{r.object.name}" == workload_key)
        and (not wanted or r.action.value in wanted)
        and (start is None or r.time >= start)
        and (end is None or r.time < end)
    ]
    chosen.sort(key=lambda r: r.time)
    if output == "json":
        click.echo(json.dumps([r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in chosen], indent=2))
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
            r.message[:100],
        ]
        for r in chosen
    ]
    click.echo(table(["TIME", "WORKLOAD", "ACTION", "REASON", "FROM", "TO", "MESSAGE"], rows))
