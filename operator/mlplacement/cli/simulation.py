"""`mlplacement simulate` and `whatif`: a trace replayed against baselines; a policy change before it rolls out."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from mlplacement.adapters.files import (
    iter_objects,
    load_fleet,
    read_manifests,
    to_plain,
)
from mlplacement.api.errors import describe_validation_error
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import TRACE_API_VERSION, Trace
from mlplacement.cli import EXAMPLES_DIR, cli
from mlplacement.cli.placement import (
    RUNNING_OPTION,
    _load_policy,
    _parse_workloads,
    _running,
)
from mlplacement.core.explain import table
from mlplacement.core.snapshot import snapshot_from_fleet


def _load_trace(path: Path) -> Trace:
    import json

    try:
        if path.suffix == ".jsonl":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            data: dict[str, Any] = {
                "apiVersion": TRACE_API_VERSION,
                "kind": "Trace",
                "events": [json.loads(line) for line in lines],
            }
        else:
            documents = [to_plain(doc) for doc in read_manifests(path).documents]
            if len(documents) != 1:
                raise click.ClickException(f"{path}: a trace file holds exactly one document")
            data = documents[0]
        return Trace.model_validate(data)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise click.ClickException(f"{path}: invalid trace: {describe_validation_error(exc)}") from None
        raise click.ClickException(f"{path}: {exc}") from None


def _policies(paths: tuple[Path, ...]) -> list[tuple[str, PlacementPolicySpec]]:
    if not paths:
        return [("defaults", PlacementPolicySpec())]
    return [(path.stem, _load_policy(path)) for path in paths]


def _summary_table(summaries: list[dict[str, Any]]) -> str:
    def fmt(value: Any, pattern: str = "{}") -> str:
        return "-" if value is None else pattern.format(value)

    rows = [
        [
            s["strategy"],
            f"{s['placed']}/{s['arrivals']}",
            " ".join(f"{k[0]}{v}" for k, v in s["placementsByKind"].items()),
            fmt(s["totalCostUSD"], "{:.0f}"),
            fmt(s["costPerWorkloadUSD"], "{:.2f}"),
            fmt(s["egressUSD"], "{:.0f}"),
            fmt(s["slaAttainment"], "{:.0%}"),
            "/".join(fmt(s["latencyMs"][q], "{:.0f}") for q in ("p50", "p95", "p99")),
            str(s["preemptions"]),
            str(s["failovers"]),
            fmt(s["meanWaitMinutes"], "{:.0f}"),
            str(s["waitingAtEnd"]),
            str(s["unschedulablePlacements"]),
            f"{s['strandedGPUHours']:.0f}",
        ]
        for s in summaries
    ]
    headers = [
        "STRATEGY",
        "PLACED",
        "BY KIND (D/E/G)",
        "COST $",
        "$/WL",
        "EGRESS $",
        "SLA",
        "LAT p50/95/99",
        "PREEMPT",
        "FAILOVER",
        "WAIT MIN",
        "WAITING",
        "UNSCHED",
        "STRANDED GPU-H",
    ]
    return table(headers, rows)


@cli.command()
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fleet file; default: the embedded sample fleet.",
)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trace file (.yaml or .jsonl, apiVersion mlplacement.io/trace/v1).",
)
@click.option("--generate", "generate", type=int, help="Generate a trace of this many arrivals instead.")
@click.option("--seed", default=7, show_default=True, help="Seed for --generate.")
@click.option("--hours", default=24.0, show_default=True, help="Length of a generated trace.")
@click.option(
    "--policy",
    "policy_paths",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PlacementPolicy to simulate the engine under (repeatable); default: built-in defaults.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.json, the trace (if generated) and PNG plots here.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def simulate(
    fleet_path: Path | None,
    trace_path: Path | None,
    generate: int | None,
    seed: int,
    hours: float,
    policy_paths: tuple[Path, ...],
    out_dir: Path | None,
    no_plots: bool,
    output: str,
) -> None:
    """Replay a trace through the engine and baselines; compare cost, latency, preemptions, waits."""
    import json

    from mlplacement.adapters.files import dump_plain as dump
    from mlplacement.core.simulation import generate_trace, iter_reports, knows_work, strategies_for

    if (trace_path is None) == (generate is None):
        raise click.UsageError("give exactly one of --trace FILE or --generate N")
    fleet = load_fleet(fleet_path)
    trace = _load_trace(trace_path) if trace_path is not None else generate_trace(fleet, generate or 0, seed, hours)
    work = knows_work(trace)
    strategies = strategies_for(_policies(policy_paths), per_hour=work)
    start = fleet.decision_time(datetime.now(UTC))
    with click.progressbar(length=len(trace.events) * len(strategies), label="simulating", file=sys.stderr) as bar:
        reports = list(iter_reports(fleet, trace, strategies, start, progress=bar.update))
    summaries = [r.summary() for r in reports]
    if output == "json":  # the same shape as report.json
        click.echo(json.dumps({"strategies": summaries}, indent=2))
        return
    click.echo(_summary_table(summaries))
    scarcity = _scarcity_table(summaries)
    if scarcity:
        click.echo(scarcity)
    if work:
        click.echo(_work_table(summaries))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps({"strategies": summaries}, indent=2) + "\n")
        if trace_path is None:
            (out_dir / "trace.yaml").write_text(dump([trace.to_wire()]))
        click.echo(f"wrote {out_dir / 'report.json'}")
        if not no_plots:
            from mlplacement.adapters.plots import write_plots

            try:
                for path in write_plots(reports, out_dir):
                    click.echo(f"wrote {path}")
            except RuntimeError as exc:
                click.echo(f"warning: {exc}", err=True)


def _work_table(summaries: list[dict[str, Any]]) -> str:
    """Outcomes per job when the trace says how much work each run is: what cost per job and deadlines change."""
    rows = [
        [
            s["strategy"],
            str(s["finished"]),
            f"{s['totalCostUSD']:.0f}",
            "-" if s["costPerFinishedUSD"] is None else f"{s['costPerFinishedUSD']:.2f}",
            f"{s['deadlineMisses']}/{s['deadlinesJudged']}",
            f"{s['reworkHours']:.1f}",
        ]
        for s in summaries
    ]
    headers = ["STRATEGY", "FINISHED", "COST $", "$/FINISHED", "DEADLINES MISSED", "REWORK H"]
    return (
        "\nRuns with known work (intent.expectedGPUHours): each lasts its GPU-hours at the placed GPUs' speed;\n"
        + table(headers, rows)
        + "\n$/FINISHED is all the money spent over the runs that finished. REWORK H: hours redone after spot"
        "\nreclaims and failovers (work since the last checkpoint, all of it without checkpoints) plus restarts."
        "\n:per-hour is the same engine told nothing about the work of a run: it prices GPU-hours."
    )


def _scarcity_table(summaries: list[dict[str, Any]]) -> str:
    """Waits by team and for the highest priority, when the trace has several teams or preemption happened."""
    namespaces = sorted({ns for s in summaries for ns in s["waitMinutesByNamespace"]})
    preempted = any(s["priorityPreemptions"] for s in summaries)
    if len(namespaces) < 2 and not preempted:
        return ""
    top = max((int(p) for s in summaries for p in s["waitMinutesByPriority"]), default=0)
    rows = []
    for s in summaries:
        waits = s["waitMinutesByNamespace"]
        highest = s["waitMinutesByPriority"].get(str(top))
        rows.append(
            [
                s["strategy"],
                str(s["priorityPreemptions"]),
                *(f"{waits[ns]['p50']:.0f}/{waits[ns]['p95']:.0f}" if ns in waits else "-" for ns in namespaces),
                f"{highest['max']:.0f}" if highest else "-",
            ]
        )
    headers = ["STRATEGY", "PREEMPTED", *(f"{ns} p50/p95" for ns in namespaces), f"PRIORITY {top} WAIT"]
    return (
        "\nWaits by team, in minutes from arrival to first start (never started: to the end of the replay):\n"
        + table(headers, rows)
        + "\nPREEMPTED counts workloads stopped for higher-priority work (their remaining run goes back to the queue,"
        "\nplus the work since their last checkpoint). A team's p95 far above the others' under one strategy means"
        "\nthat strategy lets a busier team starve it; the last column is how long the most important workload waited."
    )


@cli.command()
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The proposed PlacementPolicy.",
)
@click.option(
    "--current",
    "current_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The policy in force; default: the built-in defaults.",
)
@click.option("--fleet", "fleet_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--workloads",
    "workload_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="MLWorkload and MLPipeline files or directories (repeatable; a pipeline counts stage by stage); "
    "default: examples/.",
)
@RUNNING_OPTION
@click.option("--live", is_flag=True, help="Against the live cluster (read-only): its fleet, workloads and placements.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="For --live; default: $KUBECONFIG, ~/.kube/config.")
@click.option("--context", help="For --live: the kubeconfig context.")
@click.option(
    "--namespace", default="mlplacement-system", show_default=True, help="For --live: the operator's namespace."
)
@click.option("--max-moves", type=int, help="Exit 3 when more running workloads would move than this.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def whatif(
    policy_path: Path,
    current_path: Path | None,
    fleet_path: Path | None,
    workload_paths: tuple[Path, ...],
    running_paths: tuple[Path, ...],
    live: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    max_moves: int | None,
    output: str,
) -> None:
    """Impact of a policy change: which workloads move, which become infeasible, cost and latency delta.

    Exit codes (every command): 0 done; 1 an error (bad file, unreachable cluster); 2 bad usage; 3 a gate
    failed (here: a workload would become infeasible, or more would move than --max-moves), so a CI job can
    stop a policy pull request."""
    if live:
        _whatif_live(policy_path, kubeconfig, context, namespace, max_moves, output)
        return
    from mlplacement.core.whatif import whatif as analyse

    fleet = load_fleet(fleet_path)
    snapshot = snapshot_from_fleet(fleet, datetime.now(UTC))
    paths = list(workload_paths) or [EXAMPLES_DIR]
    requests = _parse_workloads([(f"{p}#{i + 1}", o) for p, i, o in iter_objects(paths)])
    if not requests:  # a gate that judged nothing must not pass
        raise click.ClickException(f"no MLWorkload or MLPipeline in {', '.join(map(str, paths))}: nothing to judge")
    running = _running(running_paths, snapshot)
    changes, totals = analyse(requests, snapshot, _load_policy(current_path), _load_policy(policy_path), running)
    if output == "json":
        click.echo(json.dumps({"changes": [dataclasses.asdict(c) | {"change": c.kind} for c in changes], **totals}))
        _gate(totals, max_moves)
        return
    if not changes:
        click.echo(f"no change for any of {totals['workloads']} workloads")
        return
    rows = [
        [
            c.key,
            c.kind,
            c.before or "-",
            c.after or "-",
            f"{c.cost_delta_usd:+g}",
            "-" if c.latency_delta_ms is None else f"{c.latency_delta_ms:+g}",
            c.why[:120],
        ]
        for c in changes
    ]
    click.echo(table(["WORKLOAD", "CHANGE", "BEFORE", "AFTER", "$/H DELTA", "LATENCY DELTA MS", "WHY"], rows))
    click.echo(
        f"\n{totals['moves']} move, {totals['becomeInfeasible']} become infeasible, {totals['becomePlaceable']} "
        f"become placeable; hourly cost ${totals['hourlyCostBeforeUSD']} -> ${totals['hourlyCostAfterUSD']}"
        + (f"; {totals['preempted']} running workloads preempted" if totals["preempted"] else "")
    )
    _gate(totals, max_moves)


GATE_FAILED = 3  # exit code: a what-if gate failed (see whatif --help)


def _gate(totals: dict[str, Any], max_moves: int | None) -> None:
    problems = []
    if totals["becomeInfeasible"]:
        problems.append(f"{totals['becomeInfeasible']} workloads would become infeasible")
    if max_moves is not None and totals["moves"] > max_moves:
        problems.append(f"{totals['moves']} workloads would move (--max-moves {max_moves})")
    if problems:
        click.echo("gate failed: " + "; ".join(problems), err=True)
        sys.exit(GATE_FAILED)


def _whatif_live(
    policy_path: Path, kubeconfig: str | None, context: str | None, namespace: str, max_moves: int | None, output: str
) -> None:
    """The proposed policy against the live cluster, read-only."""
    from mlplacement.adapters.live import read_live
    from mlplacement.config import OperatorConfig
    from mlplacement.core.snapshot import build_snapshot
    from mlplacement.core.whatif import live_workloads, whatif_live

    proposed = _load_policy(policy_path)
    try:
        state = read_live(kubeconfig, context, namespace, OperatorConfig().signals_configmap)
    except Exception as exc:
        raise click.ClickException(f"cannot read the cluster: {type(exc).__name__}: {str(exc)[:300]}") from None
    snapshot = build_snapshot(
        now=datetime.now(UTC),
        nodes=state.nodes,
        pods=state.pods,
        edge_clusters=state.edge_clusters,
        databricks_workspaces=state.workspaces,
        signals_configmap=state.signals_configmap,
    )
    changes, totals = whatif_live(live_workloads(state.workloads, snapshot), snapshot, proposed)
    if output == "json":
        click.echo(json.dumps({"changes": [dataclasses.asdict(c) | {"change": c.kind} for c in changes], **totals}))
    else:
        rows = [
            [c.key, c.kind, c.now or "-", c.after or "-", f"{c.cost_delta_usd:+g}", _sla(c.sla_met), c.why[:120]]
            for c in changes
        ]
        click.echo(table(["WORKLOAD", "CHANGE", "NOW", "AFTER", "$/H DELTA", "SLA", "WHY"], rows))
        click.echo(
            f"\n{totals['moves']} move, {totals['becomeInfeasible']} become infeasible, {totals['becomePlaceable']} "
            f"become placeable, {totals['slaLost']} lose their latency target; hourly cost "
            f"${totals['hourlyCostBeforeUSD']} -> ${totals['hourlyCostAfterUSD']}"
        )
    _gate(totals, max_moves)


def _sla(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "LOST")
