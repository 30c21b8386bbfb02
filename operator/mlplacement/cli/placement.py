"""`mlplacement explain` and `demo`: where workloads would run on a fleet file, and why."""

from __future__ import annotations

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
from mlplacement.api.constants import Reason
from mlplacement.api.errors import describe_validation_error
from mlplacement.api.pipeline import MLPipeline
from mlplacement.api.policy import PlacementPolicy, PlacementPolicySpec
from mlplacement.api.workload import MLWorkload
from mlplacement.cli import EXAMPLES_DIR, cli
from mlplacement.cli.common import emit, filename_option, inputs, output_option, terminal_columns
from mlplacement.core.counterfactual import counterfactuals
from mlplacement.core.explain import render_decision, render_many, summary_line
from mlplacement.core.placement import PlacementRequest, decide_many, request_from_workload
from mlplacement.core.samples import generate_workloads
from mlplacement.core.signing import verify
from mlplacement.core.snapshot import snapshot_from_fleet

MAX_EXPLAINED_WAITING = 50  # decisions whose counterfactuals explain works out (each a few engine calls)


def _load_policy(path: Path | None) -> PlacementPolicySpec:
    if path is None:
        return PlacementPolicySpec()
    policies = [to_plain(doc) for doc in read_manifests(path).documents if doc.get("kind") == "PlacementPolicy"]
    if len(policies) != 1:
        raise click.ClickException(f"{path}: expected one PlacementPolicy, found {len(policies)}")
    try:
        return PlacementPolicy.model_validate(policies[0]).spec
    except ValidationError as exc:
        raise click.ClickException(f"{path}: {describe_validation_error(exc, 'PlacementPolicy ')}") from None


def _policy_refusal(path: Path, keyring: Any, now: datetime) -> tuple[str, str] | None:
    """(reason, message) the operator refuses every workload with when the policy at ``path`` does not verify."""
    (policy,) = [to_plain(doc) for doc in read_manifests(path).documents if doc.get("kind") == "PlacementPolicy"]
    verdict = verify(policy, keyring, now)
    if verdict.ok:
        return None
    name = (policy.get("metadata") or {}).get("name")
    return (
        Reason.POLICY_UNSIGNED.value,
        f"PlacementPolicy {name!r} does not verify: {verdict.reason.value}: {verdict.message}",
    )


def _parse_pipeline(where: str, obj: dict[str, Any]) -> MLPipeline:
    try:
        return MLPipeline.model_validate(obj)
    except ValidationError as exc:
        raise click.ClickException(f"{where}: {describe_validation_error(exc, 'MLPipeline ')}") from None


def _parse_workloads(objects: list[tuple[str, dict[str, Any]]]) -> list[PlacementRequest]:
    """Requests for the MLWorkloads in ``objects`` and for every stage of the MLPipelines there."""
    from mlplacement.core.pipeline_estimate import stage_workloads

    expanded: list[tuple[str, dict[str, Any]]] = []
    for where, obj in objects:
        if obj.get("kind") == "MLPipeline":
            _parse_pipeline(where, obj)
            expanded += [(f"{where} stage {stage}", workload) for stage, workload in stage_workloads(obj)]
        else:
            expanded.append((where, obj))
    requests = []
    for where, obj in expanded:
        if obj.get("kind") != "MLWorkload":
            continue
        try:  # a live object's status (kubectl get -o yaml) says where it runs now, not what it asks for
            workload = MLWorkload.model_validate({k: v for k, v in obj.items() if k != "status"})
        except ValidationError as exc:
            raise click.ClickException(f"{where}: {describe_validation_error(exc, 'MLWorkload ')}") from None
        requests.append(request_from_workload(workload))
    return requests


def _running(paths: tuple[Path, ...], snapshot: Any) -> list[Any]:
    """Placed or running MLWorkloads, as `kubectl get mlw -A -o yaml` prints them (status included): what
    quotas count and preemption may stop."""
    from mlplacement.core.placement.engine import target_product
    from mlplacement.core.scarcity import running_from

    products = {t.key: target_product(t) for t in snapshot.targets}
    found = []
    for path, index, obj in iter_objects(list(paths)):
        for item in obj.get("items") or [] if obj.get("kind") == "List" else [obj]:
            if not isinstance(item, dict) or item.get("kind") != "MLWorkload":
                continue
            try:
                workload = MLWorkload.model_validate({k: v for k, v in item.items() if k != "status"})
            except ValidationError as exc:
                where = f"{path}#{index + 1}"
                raise click.ClickException(f"{where}: {describe_validation_error(exc, 'MLWorkload ')}") from None
            entry = running_from(workload, item.get("status") or {}, products)
            if entry is not None:
                found.append(entry)
    return found


RUNNING_OPTION = click.option(
    "--running",
    "running_paths",
    multiple=True,
    type=click.Path(path_type=Path, allow_dash=True),
    help="What runs now (repeatable): `kubectl get mlw -A -o yaml` output. Quotas count it, preemption may stop it.",
)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@filename_option("MLWorkload or MLPipeline file")
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Fleet file (apiVersion mlplacement.io/fleet/v1); default: the embedded sample fleet.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="PlacementPolicy to decide under; default: the built-in defaults.",
)
@RUNNING_OPTION
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Trusted public keys (<keyId>.pem, as in the trusted-keys Secret): say which workloads the operator "
    "would refuse, and why, instead of placing them.",
)
@click.option("--compact", is_flag=True, help="One line per workload instead of every candidate and rejection.")
@output_option()
def explain(
    files: tuple[Path, ...],
    filenames: tuple[Path, ...],
    fleet_path: Path | None,
    policy_path: Path | None,
    running_paths: tuple[Path, ...],
    keys_dir: Path | None,
    compact: bool,
    output: str,
) -> None:
    """Show where each MLWorkload in FILES (or -f FILE, '-' for standard input) would run, every candidate's score
    and every rejection; for an MLPipeline, where each stage would run and why, a run's cost, the data moved
    between stages (egress $) and the critical path. The last line sums it up."""
    from mlplacement.core.keyring import parse_keyring

    paths = inputs(files, filenames)
    fleet = load_fleet(fleet_path)
    now = datetime.now(UTC)
    snapshot = snapshot_from_fleet(fleet, now)
    policy = _load_policy(policy_path)
    objects = [(f"{path}#{index + 1}", obj) for path, index, obj in iter_objects(paths)]
    refused: list[dict[str, Any]] = []
    if keys_dir is not None:
        keyring = parse_keyring({p.name: p.read_bytes() for p in sorted(keys_dir.glob("*.pem"))})
        # The policy is judged as the operator judges it: one that does not verify refuses every workload.
        policy_refusal = _policy_refusal(policy_path, keyring, now) if policy_path is not None else None
        kept = []
        for where, obj in objects:
            verdict = verify(obj, keyring, now) if obj.get("kind") in ("MLWorkload", "MLPipeline") else None
            refusal = (verdict.reason.value, verdict.message) if verdict is not None and not verdict.ok else None
            if refusal is None and obj.get("kind") in ("MLWorkload", "MLPipeline"):
                refusal = policy_refusal
            if refusal is not None:
                meta = obj.get("metadata") or {}
                refused.append(
                    {
                        "kind": obj.get("kind"),
                        "workload": f"{meta.get('namespace') or ''}/{meta.get('name')}",
                        "file": where,
                        "reason": refusal[0],
                        "message": refusal[1],
                    }
                )
            else:
                kept.append((where, obj))
        objects = kept
    pipelines = [(where, obj) for where, obj in objects if obj.get("kind") == "MLPipeline"]
    requests = _parse_workloads([(where, obj) for where, obj in objects if obj.get("kind") != "MLPipeline"])
    if not requests and not refused and not pipelines:
        raise click.ClickException("no MLWorkload or MLPipeline found in the given files")
    running = _running(running_paths, snapshot)
    decisions = decide_many(requests, {None: policy}, snapshot, running=running) if requests else []
    estimates = [_estimate(where, obj, policy, snapshot, running) for where, obj in pipelines]
    from mlplacement.core.pipeline_estimate import estimate_json, render_pipeline_estimate

    fits = {
        d.request.key: counterfactuals(d.request, policy, snapshot, running, d)
        for d in decisions[:MAX_EXPLAINED_WAITING]
        if d.chosen is None
    }
    document = {
        "refused": refused,
        "decisions": [
            _decision_json(d)
            | {
                "fitsIf": [
                    {"change": c.change.value, "target": c.target, "text": c.text} for c in fits.get(d.request.key, [])
                ]
            }
            for d in decisions
        ],
        "pipelines": [estimate_json(e) for e in estimates],
    }
    if emit(document, output):
        return
    for item in refused:
        click.echo(f"{item['kind']} {item['workload']}\n  refused: {item['reason']}: {item['message']}\n")
    if compact and decisions:
        click.echo(render_many(decisions, terminal_columns(output)) + "\n")
    else:
        for decision in decisions:
            found = fits.get(decision.request.key) or []
            would = "".join(f"\n  would fit now: {c.text.removeprefix('fits ')}" for c in found)
            click.echo(render_decision(decision) + would + "\n")
    for estimate in estimates:
        click.echo(render_pipeline_estimate(estimate) + "\n")
    if decisions or refused:
        click.echo(summary_line(decisions, len(refused)))


def _estimate(where: str, obj: dict[str, Any], policy: PlacementPolicySpec, snapshot: Any, running: list[Any]) -> Any:
    """A pipeline's dry run: each stage decided on its own (stages run at different times)."""
    from mlplacement.core.pipeline_estimate import estimate_pipeline, stage_workloads

    pipeline = _parse_pipeline(where, obj)
    decisions = {}
    for stage, workload in stage_workloads(obj):
        (request,) = _parse_workloads([(f"{where} stage {stage}", workload)])
        (decisions[stage],) = decide_many([request], {None: policy}, snapshot, running=running)
    return estimate_pipeline(pipeline, decisions, snapshot)


def _decision_json(decision: Any) -> dict[str, Any]:
    """A decision as explain -o json prints it (a stable shape: scripts and CI read this, never the table)."""
    chosen = decision.chosen
    return {
        "workload": decision.request.key,
        "placed": decision.placed,
        "reason": decision.reason.value,
        "target": None
        if chosen is None
        else {"kind": chosen.target.kind.value, "name": chosen.target.name, "region": chosen.target.region},
        "hourlyCostUSD": None if chosen is None else chosen.hourly_cost_usd,
        "message": decision.message,
        # The free GPUs of each node its pods were counted on (node-shaped pools), and a gang's topology block.
        "nodesFreeGPUs": sorted(decision.nodes),
        "block": None if chosen is None or chosen.target.pin is None else "=".join(chosen.target.pin),
        "candidates": [
            {
                "kind": c.target.kind.value,
                "name": c.target.name,
                "score": c.score,
                "hourlyCostUSD": c.hourly_cost_usd,
                "expectedLatencyMs": c.expected_latency_ms,
                "breakdown": dict(c.breakdown),
            }
            for c in decision.candidates
        ],
        "rejections": [{"reason": r.reason, "targets": [t.name for t in r.targets]} for r in decision.rejections],
    }


@cli.command()
@click.option("--generated", default=24, show_default=True, help="How many generated workloads to add.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--examples",
    "examples_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=EXAMPLES_DIR,
    help="Directory of MLWorkload (and PlacementPolicy) files; default: the source checkout's examples/.",
)
def demo(generated: int, seed: int, examples_dir: Path) -> None:
    """Place examples/ plus a generated mixed batch on the embedded sample fleet, and explain each decision;
    dry-run the example pipelines stage by stage."""
    fleet = load_fleet(None)
    snapshot = snapshot_from_fleet(fleet, datetime.now(UTC))
    if not examples_dir.is_dir():
        click.echo(f"warning: no examples at {examples_dir} (pass --examples DIR): the generated batch only", err=True)
    objects = [(f"{p}#{i + 1}", o) for p, i, o in iter_objects([examples_dir])] if examples_dir.is_dir() else []
    policy_objects = [o for _, o in objects if o.get("kind") == "PlacementPolicy"]
    policy = PlacementPolicy.model_validate(policy_objects[0]).spec if policy_objects else PlacementPolicySpec()
    pipelines = [(where, obj) for where, obj in objects if obj.get("kind") == "MLPipeline"]
    # Pipeline stages run one after another, never all at once: shown as a dry run of the DAG, below.
    examples = _parse_workloads([(where, obj) for where, obj in objects if obj.get("kind") != "MLPipeline"])
    batch = _parse_workloads([(m["metadata"]["name"], m) for m in generate_workloads(generated, seed)])
    kinds = ", ".join(
        f"{sum(len(ts) for ts in regions.values())} {kind.value}" for kind, regions in snapshot.by_kind_region.items()
    )
    click.echo(
        f"Sample fleet: {len(snapshot.targets)} targets ({kinds}), signals {snapshot.signals_age_seconds:.0f}s old\n"
    )
    decisions = decide_many(examples, {None: policy}, snapshot)
    click.echo("== The examples/ workloads, each explained ==\n")
    for decision in decisions:
        click.echo(render_decision(decision) + "\n")
    click.echo(
        f"== {len(examples)} examples + {len(batch)} generated workloads, placed together in priority order ==\n"
    )
    everything = decide_many([*examples, *batch], {None: policy}, snapshot)
    click.echo(render_many(everything, terminal_columns("table")))
    placed = sum(d.placed for d in everything)
    cost = sum(d.chosen.hourly_cost_usd for d in everything if d.chosen is not None)
    click.echo(f"\n{placed}/{len(everything)} placed, ${cost:.2f}/h in total")
    if pipelines:
        from mlplacement.core.pipeline_estimate import render_pipeline_estimate

        click.echo("\n== The examples/ pipelines, stage by stage (each stage placed when its inputs are ready) ==\n")
        for where, obj in pipelines:
            click.echo(render_pipeline_estimate(_estimate(where, obj, policy, snapshot, [])) + "\n")
