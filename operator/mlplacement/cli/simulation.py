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
    read_text,
    to_plain,
)
from mlplacement.api.errors import describe_validation_error
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import TRACE_API_VERSION, Trace
from mlplacement.cli import cli
from mlplacement.cli.common import MAX_MOVES_OPTION, PROPOSED_POLICY_OPTION, emit, fitted_table, output_option, plural
from mlplacement.cli.placement import (
    RUNNING_OPTION,
    _load_policy,
    _parse_workloads,
    _running,
)
from mlplacement.core.explain import table
from mlplacement.core.snapshot import snapshot_from_fleet


def _load_trace(path: Path) -> Trace:

    try:
        if path.suffix == ".jsonl":
            lines = [line for line in read_text(path).splitlines() if line.strip()]
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
        "BY KIND D/E/G",
        "COST $",
        "$/WL",
        "EGRESS $",
        "SLA",
        "LAT p50/95/99",
        "SPOT LOST",
        "FAILOVER",
        "WAIT MIN",
        "WAITING",
        "UNSCHED",
        "STRANDED GPU-H",
    ]
    return (
        table(headers, rows)
        + "\nBY KIND: placements on Databricks/Edge/GPUPool. LAT: expected latency of latency-class workloads (ms)."
        "\nSLA: latency-class workloads whose expected latency met their target; one never started met none."
        "\nSPOT LOST: workloads sent back to the queue by spot reclaims; FAILOVER: by an unhealthy target."
        "\nWAITING: never started by the end; UNSCHED: placements no node could hold."
    )


@cli.command()
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Fleet file; default: the embedded sample fleet.",
)
@click.option(
    "--trace",
    "-f",
    "trace_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Trace file (.yaml or .jsonl, apiVersion mlplacement.io/trace/v1; '-' reads standard input).",
)
@click.option(
    "--generate", "generate", type=click.IntRange(min=1), help="Generate a trace of this many arrivals instead."
)
@click.option("--seed", default=7, show_default=True, help="Seed for --generate.")
@click.option(
    "--hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True, max=24 * 366),
    help="Length of a generated trace.",
)
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
@output_option()
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

    from mlplacement.adapters.files import dump_plain as dump
    from mlplacement.core.simulation import (
        generate_trace,
        invalid_arrivals,
        iter_reports,
        knows_work,
        strategies_for,
    )

    if (trace_path is None) == (generate is None):
        raise click.UsageError("give exactly one of --trace FILE or --generate N")
    fleet = load_fleet(fleet_path)
    trace = _load_trace(trace_path) if trace_path is not None else generate_trace(fleet, generate or 0, seed, hours)
    _check_targets(trace, fleet, trace_path, fleet_path)
    invalid = invalid_arrivals(trace)
    if invalid:
        more = f" (and {len(invalid) - 3} more)" if len(invalid) > 3 else ""
        raise click.ClickException(
            f"{trace_path}: {plural(len(invalid), 'arrival')} the operator would refuse (InvalidSpec): "
            + "; ".join(invalid[:3])
            + more
        )
    work = knows_work(trace)
    strategies = strategies_for(_policies(policy_paths), per_hour=work)
    start = fleet.decision_time(datetime.now(UTC))
    with _Progress(len(trace.events) * len(strategies), [name for name, _ in strategies]) as progress:
        reports = list(iter_reports(fleet, trace, strategies, start, progress=progress.update))
    summaries = [r.summary() for r in reports]
    arrivals = summaries[0]["arrivals"] if summaries else 0
    if arrivals and not any(s["placed"] for s in summaries):
        click.echo(
            f"warning: no strategy placed any of the {plural(arrivals, 'arrival')}: does the fleet have what the "
            "trace asks for (--fleet)?",
            err=True,
        )
    if not emit({"strategies": summaries}, output):  # the same shape as report.json
        click.echo(_summary_table(summaries))
        scarcity = _scarcity_table(summaries)
        if scarcity:
            click.echo(scarcity)
        if work:
            click.echo(_work_table(summaries))
        for section in (_eta_lines(summaries), _conserving_lines(summaries), _never_started_lines(summaries, output)):
            if section:
                click.echo(section)
    if out_dir is not None:  # messages on stderr: standard output may be the JSON a script reads
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps({"strategies": summaries}, indent=2) + "\n")
        if trace_path is None:
            (out_dir / "trace.yaml").write_text(dump([trace.to_wire()]))
        click.echo(f"wrote {out_dir / 'report.json'}", err=True)
        if not no_plots:
            from mlplacement.adapters.plots import write_plots

            try:
                for path in write_plots(reports, out_dir):
                    click.echo(f"wrote {path}", err=True)
            except RuntimeError as exc:
                click.echo(f"warning: {exc}", err=True)


def _eta_lines(summaries: list[dict[str, Any]]) -> str:
    """How good the engine's start estimates were (made when a workload first waits, from the expected ends of
    what runs: stated work, maxRuntimeMinutes, or the median of similar finished runs)."""
    lines = []
    for s in summaries:
        made, missing = s.get("etaEstimated", 0), s.get("etaMissing", 0)
        if not made and not missing:
            continue
        error = s.get("etaErrorMinutes")
        said = (
            f"|actual - estimated start| p50 {error['p50']:g} min, p90 {error['p90']:g} min "
            f"(median signed {error['medianSigned']:+g})"
            if error
            else "no estimate could be checked"
        )
        lines.append(f"  {s['strategy']}: {made} estimated, {missing} without a basis; {said}")
        runtime = s.get("learnedRuntimeErrorMinutes")
        if runtime:
            lines.append(
                f"    run lengths learned from similar finished runs: {s['learnedRuntimes']} predicted, |actual - "
                f"predicted| p50 {runtime['p50']:g} min, p90 {runtime['p90']:g} min"
            )
    if not lines:
        return ""
    return (
        "\nStart estimates for waiting work (kubectl mlplacement queue's ETA), checked against the replay:\n"
        + "\n".join(lines)
    )


def _conserving_lines(summaries: list[dict[str, Any]]) -> str:
    """Whether the engine left work idle that its own rules would have placed (checked after every round)."""
    lines = [
        f"  {s['strategy']}: {plural(s['workConservingChecks'], 'check')}, "
        f"{plural(s['workConservingViolationCount'], 'violation')}"
        + (f" (first: {s['workConservingViolations'][0]})" if s["workConservingViolations"] else "")
        for s in summaries
        if s.get("workConservingChecks")
    ]
    if not lines:
        return ""
    return (
        "\nWork conservation: after each round, could a waiting workload be placed alone on what was left (its "
        "hard\nconstraints, quota and preemption as the engine applies them)?\n" + "\n".join(lines)
    )


NEVER_STARTED_SHOWN = 5


def _never_started_lines(summaries: list[dict[str, Any]], output: str) -> str:
    """Per strategy, the workloads that never started and the engine's words for why, at the end of the replay."""
    lines = []
    for s in summaries:
        never = s.get("neverStarted") or []
        if not never:
            continue
        shown = never if output == "wide" else never[:NEVER_STARTED_SHOWN]
        lines.append(f"  {s['strategy']}: {plural(len(never), 'workload')}")
        lines += [f"    {n['workload']}: {n['why']}" for n in shown]
        if len(shown) < len(never):
            lines.append(f"    ... {len(never) - len(shown)} more (-o wide or -o json lists them all)")
    return "\nNever started, and why at the end of the replay:\n" + "\n".join(lines) if lines else ""


def _check_targets(trace: Trace, fleet: Any, trace_path: Path | None, fleet_path: Path | None) -> None:
    """A trace naming targets the fleet lacks was made for another fleet: replaying it would compare nothing."""
    known = {p.name for p in fleet.pools} | {e.name for e in fleet.edge_clusters}
    known |= {w.name for w in fleet.databricks_workspaces}
    missing = sorted({e.target for e in trace.events if e.target is not None and e.target not in known})
    beside = trace_path.parent / "fleet.yaml" if trace_path is not None and str(trace_path) != "-" else None
    hint = f" (its own fleet is beside it: --fleet {beside})" if beside is not None and beside.is_file() else ""
    fleet_name = str(fleet_path) if fleet_path is not None else "the embedded sample fleet"
    if not missing:
        if fleet_path is None and hint:
            click.echo(f"warning: replaying on {fleet_name}{hint}", err=True)
        return
    raise click.ClickException(
        f"{trace_path or 'the trace'} names {plural(len(missing), 'target')} that {fleet_name} does not have: "
        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}{hint}"
    )


class _Progress:
    """A progress bar on a terminal; elsewhere (CI, a pipe) a line every 10% with the strategy being replayed."""

    def __init__(self, total: int, names: list[str]) -> None:
        self.total, self.names, self.done, self.said = max(1, total), names, 0, 0
        self.bar = click.progressbar(length=total, label="simulating", file=sys.stderr) if _is_tty() else None

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        else:
            click.echo(f"simulating {', '.join(self.names)} ({plural(self.total, 'event')} in all)", err=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, steps: int) -> None:
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
            return
        tenth = self.done * 10 // self.total
        if tenth > self.said:
            self.said = tenth
            strategy = self.names[min(len(self.names) - 1, self.done * len(self.names) // (self.total + 1))]
            click.echo(f"  {tenth * 10}% ({strategy})", err=True)


def _is_tty() -> bool:
    return sys.stderr.isatty()


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
    headers = ["STRATEGY", "PREEMPTED BY PRIORITY", *(f"{ns} p50/p95" for ns in namespaces), f"PRIORITY {top} WAIT"]
    return (
        "\nWaits by team, in minutes from arrival to first start (never started: to the end of the replay):\n"
        + table(headers, rows)
        + "\nPREEMPTED BY PRIORITY counts workloads stopped for higher-priority work (their remaining run goes back"
        "\nto the queue, plus the work since their last checkpoint). A team's p95 far above the others' under one"
        "\nstrategy means that strategy lets a busier team starve it; the last column is how long the most important"
        "\nworkload waited."
    )


@cli.command()
@PROPOSED_POLICY_OPTION
@click.option(
    "--current",
    "current_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="The policy in force; default: the built-in defaults.",
)
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Fleet file; default: the embedded sample fleet.",
)
@click.option(
    "--workloads",
    "-f",
    "workload_paths",
    multiple=True,
    type=click.Path(path_type=Path, allow_dash=True),
    help="MLWorkload and MLPipeline files or directories to judge (repeatable; a pipeline counts stage by stage; "
    "'-' reads standard input). Required without --live.",
)
@RUNNING_OPTION
@click.option("--live", is_flag=True, help="Against the live cluster (read-only): its fleet, workloads and placements.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="For --live; default: $KUBECONFIG, ~/.kube/config.")
@click.option("--context", help="For --live: the kubeconfig context.")
@click.option(
    "--namespace", default="mlplacement-system", show_default=True, help="For --live: the operator's namespace."
)
@MAX_MOVES_OPTION
@output_option()
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

    if not workload_paths:  # never a default set of workloads: a gate must judge what it was given
        raise click.UsageError("give the workloads to judge: -f FILE|DIR (repeatable), or --live for the cluster's")
    fleet = load_fleet(fleet_path)
    snapshot = snapshot_from_fleet(fleet, datetime.now(UTC))
    paths = list(workload_paths)
    requests = _parse_workloads([(f"{p}#{i + 1}", o) for p, i, o in iter_objects(paths)])
    if not requests:  # a gate that judged nothing must not pass
        raise click.ClickException(f"no MLWorkload or MLPipeline in {', '.join(map(str, paths))}: nothing to judge")
    running = _running(running_paths, snapshot)
    changes, totals = analyse(requests, snapshot, _load_policy(current_path), _load_policy(policy_path), running)
    if not emit({"changes": [dataclasses.asdict(c) | {"change": c.kind} for c in changes], **totals}, output):
        if not changes:
            click.echo(f"no change for any of the {plural(totals['workloads'], 'workload')}")
        else:
            rows = [
                [
                    c.key,
                    c.kind,
                    c.before or "-",
                    c.after or "-",
                    f"{c.cost_delta_usd:+g}",
                    "-" if c.latency_delta_ms is None else f"{c.latency_delta_ms:+g}",
                    c.why,
                ]
                for c in changes
            ]
            headers = ["WORKLOAD", "CHANGE", "BEFORE", "AFTER", "$/H DELTA", "LATENCY DELTA MS", "WHY"]
            click.echo(fitted_table(headers, rows, output))
            click.echo(
                f"\n{_totals_line(totals)}"
                + (f"; {plural(totals['preempted'], 'running workload')} preempted" if totals["preempted"] else "")
            )
    _gate(totals, max_moves)


def _totals_line(totals: dict[str, Any]) -> str:
    """'1 move, 0 become infeasible, ...; hourly cost $8.4 -> $9.1' (what every what-if ends with)."""
    line = (
        f"{plural(totals['moves'], 'move')}, {totals['becomeInfeasible']} become infeasible, "
        f"{totals['becomePlaceable']} become placeable"
    )
    if "slaLost" in totals:
        line += f", {totals['slaLost']} lose their latency target"
    return line + f"; hourly cost ${totals['hourlyCostBeforeUSD']} -> ${totals['hourlyCostAfterUSD']}"


GATE_FAILED = 3  # exit code: a what-if gate failed (see whatif --help)


def _gate(totals: dict[str, Any], max_moves: int | None) -> None:
    problems = []
    if totals["becomeInfeasible"]:
        problems.append(f"{plural(totals['becomeInfeasible'], 'workload')} would become infeasible")
    if max_moves is not None and totals["moves"] > max_moves:
        problems.append(f"{plural(totals['moves'], 'workload')} would move (--max-moves {max_moves})")
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
    if not emit({"changes": [dataclasses.asdict(c) | {"change": c.kind} for c in changes], **totals}, output):
        rows = [
            [c.key, c.kind, c.now or "-", c.after or "-", f"{c.cost_delta_usd:+g}", _sla(c.sla_met), c.why]
            for c in changes
        ]
        if rows:
            click.echo(fitted_table(["WORKLOAD", "CHANGE", "NOW", "AFTER", "$/H DELTA", "SLA", "WHY"], rows, output))
            click.echo("")
        click.echo(_totals_line(totals))
    _gate(totals, max_moves)


def _sla(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "LOST")
