"""The seeds' headline, measured (#33): inference tail latency and egress, the engine against centralizing
everything, cheapest-first and round-robin, on the sample traces. Request-weighted latency percentiles come from
the queueing model (core.latency) for workloads that declare their load, the round trip for the others.

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

TRACES = {
    "headline (declared load)": "examples/headline/trace.yaml",
    "steady-day": "examples/traces/steady-day.yaml",
    "busy-shift": "examples/traces/busy-shift.yaml",
}


def load(path: Path) -> Trace:
    from ruamel.yaml import YAML

    return Trace.model_validate(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "unstable" if value >= 60_000 else f"{value:.0f}"


def main() -> None:
    fleet = load_fleet(None)
    start = fleet.decision_time(datetime(2026, 11, 22, tzinfo=UTC))
    for name, path in TRACES.items():
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
        print(f"\n== {name}: {path}")
        print(table(["STRATEGY", "PLACED", "REQUEST LATENCY p50/95/99 MS", "EGRESS $", "TOTAL $", "SLA"], rows))
        by = {s["strategy"]: s for s in summaries}
        engine, central = by["engine:engine"], by["centralize"]
        e99 = (engine["requestLatencyMs"] or {}).get("p99")
        c99 = (central["requestLatencyMs"] or {}).get("p99")
        if e99 is not None and c99 is not None:
            cut = 1 - e99 / c99 if c99 else 0.0
            print(
                f"  request p99 against centralize: {cut:+.0%} ({'met' if cut >= 0.30 else 'NOT met'}: goal 30 % below)"
            )
        print(
            f"  egress against centralize: ${engine['egressTotalUSD']:.0f} vs ${central['egressTotalUSD']:.0f} "
            f"({'met' if engine['egressTotalUSD'] < central['egressTotalUSD'] else 'NOT met'})"
        )
        same_sla = [
            s for s in summaries if s is not engine and (s["slaAttainment"] or 0) >= (engine["slaAttainment"] or 0)
        ]
        if same_sla:
            cheapest = min(same_sla, key=lambda s: s["totalCostUSD"])
            ratio = engine["totalCostUSD"] / cheapest["totalCostUSD"] if cheapest["totalCostUSD"] else 0.0
            print(f"  cost against {cheapest['strategy']} (the cheapest meeting the same SLAs): {ratio:.2f}x")
        else:
            print(
                f"  cost: no baseline meets the engine's SLA attainment ({engine['slaAttainment']:.0%}); the engine "
                f"places {engine['placed']}/{engine['arrivals']}, and never starts {len(engine['neverStarted'])}: "
                + (engine["neverStarted"][0]["why"][:160] if engine["neverStarted"] else "")
            )


if __name__ == "__main__":
    main()
