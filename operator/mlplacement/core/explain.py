"""Decisions rendered for people: the candidate table of one decision and the table of many."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from mlplacement.core.placement.engine import Decision

NARROWEST_LAST_COLUMN = 40  # a table wider than the terminal still wraps its last column at this width


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], columns: int | None = None) -> str:
    """Columns padded to their widest cell. Given the terminal's ``columns``, the last column (a reason, a
    message) wraps at word boundaries to fit, continued under itself, so it is never cut."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    last_width = None
    if columns is not None and widths:
        last_width = max(NARROWEST_LAST_COLUMN, columns - sum(width + 2 for width in widths[:-1]))
        widths[-1] = min(widths[-1], last_width)
    indent = sum(width + 2 for width in widths[:-1])
    lines = []
    for row in (headers, *rows):
        cells = [str(cell) for cell in row]
        last = [cells[-1]] if last_width is None or not cells else _wrap(cells[-1], last_width)
        lines.append("  ".join([*(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)), last[0]]).rstrip())
        lines += [" " * indent + more for more in last[1:]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def describe_nodes(decision: Decision) -> str:
    """Which nodes the decision counted its pods on: "nodes: a node per worker, 2 x 8 GPUs, on nodes with 8, 8 free
    GPUs (rack=r2)"."""
    request, chosen = decision.request, decision.chosen
    free = ", ".join(str(block) for block in sorted(decision.nodes))
    pin = chosen.target.pin if chosen is not None else None
    block = f" ({pin[0]}={pin[1]})" if pin else ""
    if request.gang:
        return (
            f"nodes: a node per worker, {request.replicas} x {request.gpus} GPUs, on nodes with {free} free GPUs{block}"
        )
    pods = f"{request.replicas} pods of {request.gpus} GPUs" if request.replicas > 1 else f"{request.gpus} GPUs"
    where = "a node" if len(decision.nodes) == 1 else "nodes"
    return f"nodes: {pods} on {where} with {free} free GPUs (best fit)"


def render_decision(decision: Decision) -> str:
    """The decision, the scored candidates with their breakdown, and every rejection reason."""
    request = decision.request
    lines = [f"MLWorkload {request.key} ({request.type.value}, priority {request.priority})"]
    if decision.chosen is not None:
        target = decision.chosen.target
        lines.append(f"  decision: {target.kind.value} {target.name} in {target.region}")
    else:
        lines.append(f"  decision: not placed ({decision.reason.value})")
    lines.append(f"  {decision.message}")
    if decision.nodes and decision.chosen is not None:
        lines.append(f"  {describe_nodes(decision)}")
    if decision.signals_age_seconds is not None:
        lines.append(f"  signals age: {decision.signals_age_seconds:.0f}s")
    if decision.candidates:
        names = list(decision.candidates[0].breakdown)
        per_job = any(c.job_cost_usd is not None for c in decision.candidates)  # the work of a run is known
        served = not per_job and any(c.served_replica_usd is not None for c in decision.candidates)
        rows = [
            [
                c.target.kind.value,
                c.target.name,
                c.target.region,
                f"{c.score:.1f}",
                f"{c.hourly_cost_usd:g}",
                *([f"{c.job_cost_usd:.2f}", f"{c.runtime_hours:.1f}"] if per_job else []),
                *([f"{c.served_replica_usd:.2f}"] if served else []),
                f"{c.expected_latency_ms:g}",
                *(f"{c.breakdown[n]:.0f}" for n in names),
            ]
            for c in decision.candidates
        ]
        headers = [
            "KIND",
            "NAME",
            "REGION",
            "SCORE",
            "$/H",
            *(["$/JOB", "HOURS"] if per_job else []),
            *(["$/H PER SERVED REPLICA"] if served else []),
            # Declared load: the predicted tail of requests (core.latency), not the region's round trip.
            f"P{request.latency_percentile} MS" if request.requests_per_second is not None else "LAT MS",
        ]
        lines += [
            "",
            "Feasible candidates (best first):",
            table([*headers, *(n.upper() for n in names)], rows),
        ]
    rejected = sorted((t.kind.value, t.name, t.region, r.reason) for r in decision.rejections for t in r.targets)
    if rejected:
        lines += ["", "Rejected:", table(["KIND", "NAME", "REGION", "REASON"], [list(row) for row in rejected])]
    return "\n".join(lines)


def render_many(decisions: Sequence[Decision], columns: int | None = None) -> str:
    """One line per decision: where, at what price, and why (wrapped to a terminal of ``columns`` when given)."""
    rows = []
    for decision in decisions:
        chosen = decision.chosen
        rows.append(
            [
                decision.request.key,
                decision.request.type.value,
                str(decision.request.priority),
                f"{chosen.target.kind.value}/{chosen.target.name}" if chosen else f"- ({decision.reason.value})",
                chosen.target.region if chosen else "",
                f"{chosen.hourly_cost_usd:g}" if chosen else "",
                decision.message if chosen is None else decision.message.split(";", 1)[1].strip(),
            ]
        )
    return table(["WORKLOAD", "TYPE", "PRIO", "TARGET", "REGION", "$/H", "WHY"], rows, columns)


def summary_line(decisions: Sequence[Decision], refused: int = 0) -> str:
    """'22/27 placed, $41.20/h in total; 3 refused' for the end of a listing."""
    placed = [d for d in decisions if d.chosen is not None]
    cost = sum(d.chosen.hourly_cost_usd for d in placed if d.chosen is not None)
    waiting: dict[str, int] = {}
    for decision in decisions:
        if decision.chosen is None:
            waiting[decision.reason.value] = waiting.get(decision.reason.value, 0) + 1
    line = f"{len(placed)}/{len(decisions)} placed, ${cost:.2f}/h in total"
    if waiting:
        line += "; not placed: " + ", ".join(f"{count} {reason}" for reason, count in sorted(waiting.items()))
    if refused:
        line += f"; {refused} refused"
    return line
