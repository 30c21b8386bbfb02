"""The graph rules of a pipeline's stages: names, dependencies, artifact wiring, order, descendants.

Kept beside the models because validating an MLPipeline needs them; read stages through the small
protocol below so the pipeline model can import this module without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any, Protocol


class _Input(Protocol):
    @property
    def from_stage(self) -> str | None: ...

    @property
    def upstream_output(self) -> str: ...


class _Stage(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def depends_on(self) -> Sequence[str]: ...
    @property
    def inputs(self) -> Sequence[_Input]: ...
    @property
    def outputs(self) -> Sequence[Any]: ...
    @property
    def template(self) -> Any: ...


def dag_problems(stages: Sequence[_Stage]) -> list[str]:
    """Every reason ``stages`` is not a valid DAG, each naming the field path (``stages[2].dependsOn[0]``)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, stage in enumerate(stages):
        if stage.name in seen:
            problems.append(f"stages[{index}].name: stage {stage.name!r} is already stages[{seen[stage.name]}]")
        seen.setdefault(stage.name, index)
    known = ", ".join(sorted(seen))
    for index, stage in enumerate(stages):
        where = f"stages[{index}]"
        for position, upstream in enumerate(stage.depends_on):
            if upstream == stage.name:
                problems.append(f"{where}.dependsOn[{position}]: stage {stage.name!r} depends on itself")
            elif upstream not in seen:
                problems.append(f"{where}.dependsOn[{position}]: unknown stage {upstream!r} (stages: {known})")
        if stage.template.depends_on:
            problems.append(
                f"{where}.template.dependsOn: stages are ordered by the stage's dependsOn, not the template's"
            )
        for position, item in enumerate(stage.inputs):
            source = item.from_stage
            if source is None:
                continue
            if source not in stage.depends_on:
                problems.append(f"{where}.inputs[{position}].fromStage: {source!r} is not in the stage's dependsOn")
            elif source in seen:
                outputs = {output.name for output in stages[seen[source]].outputs}
                if item.upstream_output not in outputs:
                    problems.append(
                        f"{where}.inputs[{position}]: stage {source!r} has no output {item.upstream_output!r}"
                        f" (outputs: {', '.join(sorted(outputs)) or 'none'})"
                    )
    if not problems:
        cycle = find_cycle(stages)
        if cycle:
            first = seen[cycle[0]]
            problems.append(f"stages[{first}].dependsOn: stages form a cycle: {' -> '.join(cycle)}")
    return problems


def _graph(stages: Sequence[_Stage]) -> dict[str, list[str]]:
    return {stage.name: list(stage.depends_on) for stage in stages}


def find_cycle(stages: Sequence[_Stage]) -> list[str]:
    """One dependency cycle as a path that returns to its start (``a -> b -> a``), or [] when acyclic."""
    try:
        tuple(TopologicalSorter(_graph(stages)).static_order())
    except CycleError as exc:
        return [str(name) for name in exc.args[1]]
    return []


def topological_order(stages: Sequence[_Stage]) -> list[str]:
    """Stage names, every stage after the stages it depends on; ties in the order they are written."""
    position = {stage.name: index for index, stage in enumerate(stages)}
    sorter = TopologicalSorter(_graph(stages))
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


def descendants(stages: Sequence[_Stage], roots: Iterable[str]) -> set[str]:
    """``roots`` and every stage that depends on one of them, directly or not."""
    children: dict[str, list[str]] = {stage.name: [] for stage in stages}
    for stage in stages:
        for upstream in stage.depends_on:
            children.setdefault(upstream, []).append(stage.name)
    found: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        todo.extend(children.get(name, ()))
    return found


def critical_path(stages: Sequence[_Stage], hours: Mapping[str, float]) -> tuple[list[str], float]:
    """The longest chain of dependent stages by ``hours`` (a stage missing from it takes 0) and its length."""
    best: dict[str, tuple[float, list[str]]] = {}
    by_name = {stage.name: stage for stage in stages}
    for name in topological_order(stages):
        before = max(
            (best[upstream] for upstream in by_name[name].depends_on),
            key=_longest,
            default=(0.0, []),
        )
        best[name] = (before[0] + hours.get(name, 0.0), [*before[1], name])
    if not best:
        return [], 0.0
    length, path = max(best.values(), key=_longest)
    return path, length


def _longest(entry: tuple[float, list[str]]) -> tuple[float, int]:
    """Longest by hours; between equal ones (nothing known yet) the one with more stages."""
    return entry[0], len(entry[1])


__all__ = ["critical_path", "dag_problems", "descendants", "find_cycle", "topological_order"]
