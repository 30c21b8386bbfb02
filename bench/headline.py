"""The seeds' headline, measured (#33): inference tail latency and egress, the engine against centralizing
everything, cheapest-first and round-robin, on the sample traces. Request-weighted latency percentiles come from
the queueing model (core.latency) for workloads that declare their load, the round trip for the others.

"Centralizing everything" is judged against central-region (all work in the region with the most GPUs, on its
fastest GPUs for serving): the fair form of the claim. centralize (the cheapest pool anywhere) is shown too, but
its queues on slow GPUs grow without bound, which would make any tail look good against it.

Run: make headline (or .venv/bin/python bench/headline.py). Prints one table per trace and, per goal, whether
the engine reaches it and, where it does not, what binds."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from mlplacement.adapters.files import load_fleet  # noqa: E402
from mlplacement.api.policy import PlacementPolicySpec  # noqa: E402
from mlplacement.api.trace import Trace  # noqa: E402
from mlplacement.core.explain import table  # noqa: E402
from mlplacement.core.simulation import iter_reports, strategies_for  # noqa: E402

# name -> (trace, fleet; None for the embedded sample fleet)
TRACES = {
    "headline (declared load)": ("examples/headline/trace.yaml", "examples/headline/fleet.yaml"),
    "steady-day": ("examples/traces/steady-day.yaml", None),
    "busy-shift": ("examples/traces/busy-shift.yaml", None),
}
CENTRAL = "central-region"


def load(path: Path) -> Trace:
    from ruamel.yaml import YAML

    return Trace.model_validate(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "unstable" if value >= 60_000 else f"{value:.0f}"


def p99_against(engine: float | None, central: float | None) -> str:
    if engine is None or central is None:
        return "no latency-class requests to compare"
    if central >= 60_000:
        verdict = "met" if engine < 60_000 else "NOT met"
        return f"{ms(engine)} vs unbounded ({verdict}, but only because its queues overflow)"
    cut = 1 - engine / central if central else 0.0
    return f"{engine:.0f} vs {central:.0f} ms, {cut:.0%} lower ({'met' if cut >= 0.30 else 'NOT met'}: goal 30 % lower)"


def main() -> None:
    for name, (path, fleet_path) in TRACES.items():
        fleet = load_fleet(ROOT / fleet_path if fleet_path else None)
        start = fleet.decision_time(datetime(2026, 11, 22, tzinfo=UTC))
        trace = load(ROOT / path)
        summaries = [
            r.summary() for r in iter_reports(fleet, trace, strategies_for([("engine", PlacementPolicySpec())]), start)
        ]
        rows = []
        for s in summaries:
            latency = s["requestLatencyMs"] or {}
            rows.append(
                [
                    s["strategy"],
                    f"{s['placed']}/{s['arrivals']}",
                    "/".join(ms(latency.get(q)) for q in ("p50", "p95", "p99")),
                    f"{s['egressTotalUSD']:.0f}",
                    f"{s['totalCostUSD']:.0f}",
                    "-" if s["slaAttainment"] is None else f"{s['slaAttainment']:.0%}",
                ]
            )
        print(f"\n== {name}: {path} on {fleet_path or 'the embedded sample fleet'}")
        print(table(["STRATEGY", "PLACED", "REQUEST LATENCY p50/95/99 MS", "EGRESS $", "TOTAL $", "SLA"], rows))
        by = {s["strategy"]: s for s in summaries}
        engine, central = by["engine:engine"], by[CENTRAL]
        e99 = (engine["requestLatencyMs"] or {}).get("p99")
        c99 = (central["requestLatencyMs"] or {}).get("p99")
        print(f"  request p99 against {CENTRAL}: {p99_against(e99, c99)}")
        at_target = [(s["strategy"], (s["requestLatencyAtTargetMs"] or {}).get("p99")) for s in (engine, central)]
        if all(p99 is not None for _, p99 in at_target):
            print(
                "  the same requests' p99 without the network (their replicas' own tails, which placement changes "
                "only by the GPUs it picks): " + ", ".join(f"{name} {ms(p99)} ms" for name, p99 in at_target)
            )
        egress, central_egress = engine["egressTotalUSD"], central["egressTotalUSD"]
        verdict = "met" if egress < central_egress else "NOT met"
        print(f"  egress against {CENTRAL}: ${egress:.0f} vs ${central_egress:.0f} ({verdict})")
        same_sla = [
            s for s in summaries if s is not engine and (s["slaAttainment"] or 0) >= (engine["slaAttainment"] or 0)
        ]
        if same_sla:
            cheapest = min(same_sla, key=lambda s: s["totalCostUSD"])
            ratio = engine["totalCostUSD"] / cheapest["totalCostUSD"] if cheapest["totalCostUSD"] else 0.0
            print(f"  cost against {cheapest['strategy']} (the cheapest meeting the same SLAs): {ratio:.2f}x")
        else:
            cost = engine["totalCostUSD"] / central["totalCostUSD"] if central["totalCostUSD"] else 0.0
            print(
                f"  cost: no baseline meets the engine's SLA attainment ({engine['slaAttainment']:.0%}); "
                f"{cost:.2f}x {CENTRAL}'s (SLA {central['slaAttainment']:.0%})"
            )
        why: dict[str, int] = {}
        for never in engine["neverStarted"]:
            why[never["why"]] = why.get(never["why"], 0) + 1
        for reason, count in sorted(why.items(), key=lambda item: -item[1]):
            print(f"  the engine never starts {count}: {reason}")


if __name__ == "__main__":
    main()
