"""`kubectl mlplacement`: the queue, why a workload waits, what would make it fit and when it should start, on
the live cluster. Read-only: get and list are all it asks for (the chart's `mlplacement-viewer` ClusterRole).

Installed as the executable `kubectl-mlplacement`, so kubectl finds it on PATH. kubectl hands plugins their
arguments untouched, so the usual flags (-n, -A, --context, --kubeconfig, -o) are this command's own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from mlplacement.cli.common import MAX_MOVES_OPTION, PROPOSED_POLICY_OPTION, emit, fitted_table, output_option, plural

F = TypeVar("F", bound=Callable[..., Any])
OPERATOR_NAMESPACE = "mlplacement-system"


class Live:
    """The cluster as the current kubeconfig context sees it, read once per command."""

    def __init__(self, kubeconfig: str | None, context: str | None, operator_namespace: str) -> None:
        from kubernetes import config

        self.kubeconfig, self.context, self.operator_namespace = kubeconfig, context, operator_namespace
        try:
            self.api = config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context is not None:
                found, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next((c for c in found if c["name"] == context), active)
        except Exception as exc:  # no file, no context, a file that is not a kubeconfig: one line
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise click.ClickException(f"no usable kubeconfig ({where}): {str(exc).splitlines()[0]}") from None
        self.default_namespace = ((active or {}).get("context") or {}).get("namespace") or "default"

    def state(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        from mlplacement.adapters.live import read_live_with
        from mlplacement.config import OperatorConfig

        try:
            return read_live_with(self.api, self.operator_namespace, OperatorConfig().signals_configmap)
        except ApiException as exc:
            raise click.ClickException(_api_error(exc)) from None
        except Exception as exc:  # unreachable server, TLS: the server's words, in one line
            raise click.ClickException(f"cannot read the cluster: {type(exc).__name__}: {str(exc)[:300]}") from None


def _api_error(exc: Any) -> str:
    if exc.status == 403:
        return (
            f"forbidden: {exc.reason}; kubectl mlplacement needs read access to MLWorkloads, PlacementPolicies, "
            "EdgeClusters, DatabricksWorkspaces, Nodes and Pods (the chart's mlplacement-viewer ClusterRole)"
        )
    return f"the API server answered {exc.status} {exc.reason}"


def cluster_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Default: $KUBECONFIG, ~/.kube/config."),
            click.option("--context", help="The kubeconfig context; default: the current one."),
            click.option(
                "--operator-namespace",
                default=OPERATOR_NAMESPACE,
                show_default=True,
                help="Where the operator runs (its signals ConfigMap, its logs).",
            ),
        ]
    ):
        command = option(command)
    return command


def namespace_options(command: F) -> F:
    command = click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")(command)
    return click.option("-n", "--namespace", help="Default: the context's namespace.")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def plugin() -> None:
    """Where mlplacement will run your ML workloads, live: the queue, why one waits, what would make it fit,
    when it should start, and GPUs by pool, team and priority. Read-only."""


def _now() -> datetime:
    return datetime.now(UTC)


def _queue(live: Live, with_counterfactuals: bool = True) -> tuple[Any, list[Any]]:
    from mlplacement.core.queue import build_queue, live_queue_inputs

    inputs = live_queue_inputs(live.state(), _now())
    entries = build_queue(
        inputs.pending,
        inputs.policies,
        inputs.snapshot,
        inputs.running,
        waiting_since=inputs.waiting_since,
        with_counterfactuals=with_counterfactuals,
    )
    return inputs, entries


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m" if minutes else f"{int(seconds)}s"


def _eta(entry: Any) -> str:
    if entry.eta is None or entry.eta.at is None:
        return "-"
    if entry.placeable:
        return "next round"
    return f"{entry.eta.at:%H:%M} UTC"


def entry_json(entry: Any) -> dict[str, Any]:
    """One queue entry as -o json prints it (a stable shape)."""
    decision = entry.decision
    chosen = decision.chosen
    return {
        "position": entry.position,
        "workload": entry.key,
        "priority": entry.priority,
        "team": entry.team,
        "usage": entry.quota,
        "waitingSeconds": None if entry.waiting_seconds is None else round(entry.waiting_seconds),
        "placeableNow": entry.placeable,
        "target": None if chosen is None else f"{chosen.target.kind.value}/{chosen.target.name}",
        "reason": decision.reason.value,
        "why": decision.message,
        "fitsIf": [
            {"change": c.change.value, "target": c.target, "text": c.text, "value": c.value} for c in entry.fits_if
        ],
        "eta": None
        if entry.eta is None
        else {"at": None if entry.eta.at is None else entry.eta.at.isoformat(), "basis": entry.eta.basis},
    }


@plugin.command()
@namespace_options
@cluster_options
@output_option()
def queue(
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None,
    operator_namespace: str,
    output: str,
) -> None:
    """Every pending workload in the order the next round takes them (priority, deadline urgency, fair share,
    age): its position, its team's usage, why it waits, how long it has, and when it should start."""
    live = Live(kubeconfig, context, operator_namespace)
    _, entries = _queue(live)
    shown = (
        entries
        if all_namespaces
        else [e for e in entries if e.key.partition("/")[0] == (namespace or live.default_namespace)]
    )
    if emit({"items": [entry_json(e) for e in shown], "queued": len(entries)}, output):
        return
    if not shown:
        where = "any namespace" if all_namespaces else f"namespace {namespace or live.default_namespace}"
        click.echo(f"nothing waits in {where} ({plural(len(entries), 'pending workload')} in the cluster)")
        return
    rows = []
    for entry in shown:
        why = (
            entry.decision.message
            if not entry.placeable
            else f"placed by the next round on {entry_json(entry)['target']}"
        )
        if entry.fits_if:
            why += "; " + "; ".join(c.text for c in entry.fits_if[:2])
        rows.append(
            [
                str(entry.position),
                entry.key,
                str(entry.priority),
                entry.quota,
                _age(entry.waiting_seconds),
                _eta(entry),
                why,
            ]
        )
    click.echo(fitted_table(["POS", "WORKLOAD", "PRIO", "TEAM USAGE", "WAITED", "ETA", "WHY"], rows, output))
    click.echo(f"\n{len(shown)} shown of {plural(len(entries), 'pending workload')}")


def _workload_ref(ref: str) -> str:
    kind, slash, name = ref.partition("/")
    if not slash:
        return ref
    if kind.lower() not in ("mlw", "mlworkload", "mlworkloads", "mlworkload.mlplacement.io"):
        raise click.BadParameter(f"{ref!r}: give mlw/NAME or NAME", param_hint="WORKLOAD")
    return name


@plugin.command()
@click.argument("ref", metavar="mlw/NAME")
@namespace_options
@cluster_options
@output_option()
def explain(
    ref: str,
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None,
    operator_namespace: str,
    output: str,
) -> None:
    """Where a workload runs or why it waits: every candidate and rejection, its place in the queue, the smallest
    changes that would place it now (each checked by the engine) and when it should start."""
    from mlplacement.core.explain import render_decision

    live = Live(kubeconfig, context, operator_namespace)
    key = f"{namespace or live.default_namespace}/{_workload_ref(ref)}"
    inputs, entries = _queue(live)
    entry = next((e for e in entries if e.key == key), None)
    obj = inputs.objects.get(key)
    if entry is None:
        status = (obj or {}).get("status") or {}
        if obj is None:
            raise click.ClickException(
                f"MLWorkload {key} is not pending nor running (or does not exist, or is refused)"
            )
        document = {"workload": key, "phase": status.get("phase"), "placement": status.get("placement") or {}}
        if emit(document, output):
            return
        placement = status.get("placement") or {}
        click.echo(f"MLWorkload {key}: {status.get('phase')}; {placement.get('message') or 'no decision recorded'}")
        return
    if emit(entry_json(entry), output):
        return
    click.echo(render_decision(entry.decision))
    click.echo(
        f"\nqueue: position {entry.position} of {len(entries)}; {entry.quota}; waited {_age(entry.waiting_seconds)}"
    )
    if entry.fits_if:
        click.echo("would fit now:")
        for change in entry.fits_if:
            click.echo(f"  - {change.text}")
    elif not entry.placeable:
        click.echo("would fit now: no single change within reach (more capacity of a kind it may use)")
    if entry.eta is not None:
        when = "-" if entry.eta.at is None else f"{entry.eta.at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"expected start: {when} ({entry.eta.basis})")


@plugin.command()
@namespace_options
@cluster_options
@output_option()
def top(
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None,
    operator_namespace: str,
    output: str,
) -> None:
    """GPUs by pool (total, used, free), by team and by priority, from what runs now."""
    from mlplacement.core.kinds import KINDS

    live = Live(kubeconfig, context, operator_namespace)
    inputs, entries = _queue(live, with_counterfactuals=False)  # totals only: no engine calls per workload
    pools = [
        {
            "target": f"{t.kind.value}/{t.name}",
            "region": t.region,
            "total": t.gpus_total,
            "free": t.capacity,
            "used": max(0, t.gpus_total - t.capacity),
        }
        for t in inputs.snapshot.targets
        if KINDS[t.kind].claims_gpus
    ]
    teams: dict[str, int] = {}
    priorities: dict[int, int] = {}
    for ending in inputs.running:
        teams[ending.running.namespace] = teams.get(ending.running.namespace, 0) + ending.running.gpus
        priorities[ending.running.priority] = priorities.get(ending.running.priority, 0) + ending.running.gpus
    waiting: dict[str, int] = {}
    for entry in entries:
        team = entry.key.partition("/")[0]
        waiting[team] = waiting.get(team, 0) + entry.decision.request.gpus_needed
    document = {
        "targets": pools,
        "teams": [{"team": t, "gpus": g, "waitingGPUs": waiting.get(t, 0)} for t, g in sorted(teams.items())]
        + [{"team": t, "gpus": 0, "waitingGPUs": g} for t, g in sorted(waiting.items()) if t not in teams],
        "priorities": [{"priority": p, "gpus": g} for p, g in sorted(priorities.items(), reverse=True)],
    }
    if emit(document, output):
        return
    click.echo(
        fitted_table(
            ["TARGET", "REGION", "GPUS", "USED", "FREE"],
            [[p["target"], p["region"], str(p["total"]), str(p["used"]), str(p["free"])] for p in pools],
            output,
        )
    )
    click.echo("")
    click.echo(
        fitted_table(
            ["TEAM", "GPUS RUNNING", "GPUS WAITING"],
            [[t["team"], str(t["gpus"]), str(t["waitingGPUs"])] for t in document["teams"]],
            output,
        )
    )
    click.echo("")
    click.echo(
        fitted_table(
            ["PRIORITY", "GPUS RUNNING"], [[str(p["priority"]), str(p["gpus"])] for p in document["priorities"]], output
        )
    )


@plugin.command()
@PROPOSED_POLICY_OPTION
@MAX_MOVES_OPTION
@cluster_options
@output_option()
def whatif(
    policy_path: Path,
    max_moves: int | None,
    kubeconfig: str | None,
    context: str | None,
    operator_namespace: str,
    output: str,
) -> None:
    """What a proposed policy would do to the live cluster: moves, newly infeasible or placeable work, lost latency
    targets, hourly cost before and after (exit 3 when a gate fails, as `mlplacement whatif --live`)."""
    from mlplacement.cli.simulation import _whatif_live

    _whatif_live(policy_path, kubeconfig, context, operator_namespace, max_moves, output)


@plugin.command()
@click.argument("ref", metavar="mlw/NAME")
@namespace_options
@cluster_options
@output_option()
def audit(
    ref: str,
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None,
    operator_namespace: str,
    output: str,
) -> None:
    """Why a workload is where it is: the operator's audit records for it (from its pods' logs, where your role
    may read them), else the transitions its status keeps (status.history)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    live = Live(kubeconfig, context, operator_namespace)
    name = _workload_ref(ref)
    ns = namespace or live.default_namespace
    custom, core = client.CustomObjectsApi(live.api), client.CoreV1Api(live.api)
    try:
        obj = custom.get_namespaced_custom_object("mlplacement.io", "v1alpha1", ns, "mlworkloads", name)
    except ApiException as exc:
        if exc.status == 404:
            raise click.ClickException(f"MLWorkload {ns}/{name} not found") from None
        raise click.ClickException(_api_error(exc)) from None
    records, source = _audit_records(core, operator_namespace, f"{ns}/{name}")
    if records is None:
        history = (obj.get("status") or {}).get("history") or []
        if emit({"source": "status.history", "history": history}, output):
            return
        click.echo(f"MLWorkload {ns}/{name}: {source}; its status.history (newest last):")
        rows = [
            [str(h.get("time")), str(h.get("phase")), str(h.get("reason") or "-"), str(h.get("target") or "-")]
            for h in history
        ]
        click.echo(fitted_table(["TIME", "PHASE", "REASON", "TARGET"], rows, output) if rows else "  (empty)")
        return
    if emit({"source": "audit", "records": records}, output):
        return
    rows = [
        [
            str(r.get("time")),
            str(r.get("action")),
            str(r.get("reason")),
            "/".join(str((r.get("target") or {}).get(k, "")) for k in ("kind", "name")) if r.get("target") else "-",
            str(r.get("message") or ""),
        ]
        for r in records
    ]
    click.echo(fitted_table(["TIME", "ACTION", "REASON", "TO", "MESSAGE"], rows, output))


def _audit_records(core: Any, operator_namespace: str, key: str) -> tuple[list[dict[str, Any]] | None, str]:
    """The audit records for ``key`` in the operator pods' logs, or (None, why not)."""
    from kubernetes.client.exceptions import ApiException

    from mlplacement.api.audit import AUDIT_API_VERSION

    try:
        pods = core.list_namespaced_pod(operator_namespace, label_selector="app.kubernetes.io/name=mlplacement")
        records = []
        for pod in pods.items:
            text = core.read_namespaced_pod_log(pod.metadata.name, operator_namespace, tail_lines=100_000)
            for line in text.splitlines():
                if AUDIT_API_VERSION not in line or not line.lstrip().startswith("{"):
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                target = record.get("object") or {}
                if f"{target.get('namespace')}/{target.get('name')}" == key:
                    records.append(record)
    except ApiException as exc:
        return None, f"the operator's logs are not readable here ({exc.status} {exc.reason})"
    if not pods.items:
        return None, f"no operator pod in {operator_namespace}"
    return sorted(records, key=lambda r: str(r.get("time"))), "audit"


def main() -> None:
    """Entry point of the `kubectl-mlplacement` executable."""
    try:
        plugin(standalone_mode=True, prog_name="kubectl mlplacement")
    except Exception as exc:  # one line, as the mlplacement command (see mlplacement.cli.main)
        import os

        if os.environ.get("MLPLACEMENT_DEBUG"):
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {exc} (set MLPLACEMENT_DEBUG=1 for the traceback)", err=True
        )
        sys.exit(1)
