"""PNG plots of a simulation (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from mlplacement.core.simulation import StrategyReport


def write_plots(reports: list[StrategyReport], out_dir: Path) -> list[Path]:
    """Cost over time, latency distribution and running workloads by target kind; returns the files."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # plots are optional: the table and the JSON report need no matplotlib
        raise RuntimeError("plots need matplotlib: pip install 'mlplacement[sim]'") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axes = plt.subplots(figsize=(9, 5))
    for report in reports:
        xs = [point[0] / 60 for point in report.cost_series]
        axes.step(xs, [point[1] for point in report.cost_series], where="post", label=report.name)
    axes.set(title="Cumulative cost per strategy", xlabel="hours", ylabel="USD")
    axes.legend()
    axes.grid(alpha=0.3)
    written.append(_save(figure, out_dir / "cost-over-time.png"))

    figure, axes = plt.subplots(figsize=(9, 5))
    named = [(r.name, r.latencies_ms) for r in reports if r.latencies_ms]
    if named:
        axes.boxplot([values for _, values in named], tick_labels=[name for name, _ in named], showfliers=True)
    axes.set(title="Expected latency of latency-class workloads", ylabel="ms")
    axes.grid(alpha=0.3, axis="y")
    written.append(_save(figure, out_dir / "latency-distribution.png"))

    kinds = sorted({kind for r in reports for _, by_kind in r.kind_series for kind in by_kind})
    figure, grid = plt.subplots(len(reports), 1, figsize=(9, 2.4 * len(reports)), sharex=True, squeeze=False)
    for axes, report in zip(grid[:, 0], reports, strict=True):
        xs = [point[0] / 60 for point in report.kind_series]
        stacks = [[point[1].get(kind, 0) for point in report.kind_series] for kind in kinds]
        if xs and stacks:  # nothing ever placed (a trace whose targets the fleet lacks) leaves nothing to stack
            axes.stackplot(xs, *stacks, labels=kinds, step="post")
        axes.set(title=report.name, ylabel="running")
    grid[0, 0].legend(loc="upper right", fontsize="small")
    grid[-1, 0].set_xlabel("hours")
    written.append(_save(figure, out_dir / "placements-by-target.png"))

    if any(r.deadlines_judged or r.rework_hours for r in reports):
        figure, (cost, missed, rework) = plt.subplots(1, 3, figsize=(13, 4.5))
        names = [r.name for r in reports]
        per_job = [r.total_cost_usd / r.finished if r.finished else 0.0 for r in reports]
        cost.barh(names, per_job)
        cost.set(title="Spend per finished run", xlabel="USD")
        missed.barh(names, [r.deadline_misses for r in reports])
        missed.set(title="Deadlines missed", xlabel="runs")
        rework.barh(names, [r.rework_hours for r in reports])
        rework.set(title="Hours redone after interruptions", xlabel="hours")
        for axes in (cost, missed, rework):
            axes.grid(alpha=0.3, axis="x")
            axes.invert_yaxis()
        for axes in (missed, rework):
            axes.set_yticklabels([])
        written.append(_save(figure, out_dir / "work-outcomes.png"))
    return written


def _save(figure: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()  # type: ignore[attr-defined]
    figure.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return path
