"""One typed record per workload: everything the controller knows of it, in one place.

The store replaces the parallel dicts a workload used to be spread over (its admission view, last status, queue
entry, policy, expiry horizon, eviction, finalizers, stuck-pod clock, ...): a workload's facts are added and
forgotten together, and a round plans over the records alone (core.round).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlplacement.api.constants import ACTIVE_PHASES
from mlplacement.core.reconcile import Admitted
from mlplacement.core.scarcity import Running
from mlplacement.core.status import placement_target

Obj = Mapping[str, Any]


@dataclass
class Queued:
    """A workload waiting to be decided, with what its earlier tries taught."""

    obj: Obj
    admitted: Admitted
    attempts: int = 0
    not_before: float = 0.0  # monotonic
    fleet_version: int = -1
    failover: str = ""  # why the workload left its target; empty unless it is being placed again
    avoid: frozenset[tuple[str, str]] = frozenset()  # targets its pods could not be scheduled on
    # The last apply failure: one Event per distinct failure, and a backoff that capacity news does not cut.
    failure: str = ""
    # The rule its current target now breaks (policy or target changed): Move places it elsewhere or stops it.
    violation: str = ""


@dataclass(frozen=True)
class Move:
    """Why a running workload is placed again, said when it is queued (not patched onto its record after)."""

    why: str
    avoid: frozenset[tuple[str, str]] | None = None  # targets to keep away from; None leaves what it had


@dataclass
class Eviction:
    """A workload being stopped: its children stop at ``due`` (monotonic); then it waits to be placed again."""

    due: float
    uid: str
    status: Obj  # its status while it ran: where its children are
    back_off: bool = True  # a preempted workload waits its turn; a non-compliant one is placed again at once


# The fields the store indexes (RecordIndex): a round reads who is queued, stopping, recurring, on which target,
# in which phase and under which policy from the index, not by walking every record (DESIGN.md "Scale").
INDEXED = frozenset(
    {"obj", "status", "queued", "eviction", "policy", "recurring", "unschedulable_since", "interrupted_node"}
)


@dataclass(eq=False)
class WorkloadRecord:
    """What the controller knows of one MLWorkload. Setting an indexed field keeps its store's index current."""

    key: str  # namespace/name
    obj: Obj | None = None  # what admission reads of it (admission_view); None until it was seen whole
    status: Obj = field(default_factory=dict)  # the last status known: only changes are written
    queued: Queued | None = None  # waiting to be decided
    eviction: Eviction | None = None  # its children are being stopped (preempted, or no longer allowed)
    policy: str | None = None  # the PlacementPolicy it was admitted under
    horizon: datetime | None = None  # when its admission could stop holding with the time alone
    finalizers: tuple[str, ...] = ()  # metadata.finalizers last seen
    recurring: bool = False  # admitted with intent.schedule: pre-warming looks at these
    unschedulable_since: float | None = None  # monotonic: when its pods were first seen unschedulable
    interrupted_node: str | None = None  # the reclaimed node it was last told about
    room_at: float = 0.0  # as a preemptor: monotonic time its victims' children stop
    running: tuple[tuple[Any, ...], Running] | None = None  # (what it was built from, it), for quotas
    index: RecordIndex | None = field(default=None, repr=False)  # the store's, while the record is in one

    def __setattr__(self, name: str, value: Any) -> None:
        index = self.__dict__.get("index")
        if index is None or name not in INDEXED:
            object.__setattr__(self, name, value)
            return
        index.remove(self, name)
        object.__setattr__(self, name, value)
        index.add(self, name)

    @property
    def uid(self) -> str:
        return str(((self.obj or {}).get("metadata") or {}).get("uid") or "")

    @property
    def generation(self) -> Any:
        return ((self.obj or {}).get("metadata") or {}).get("generation")

    @property
    def target(self) -> Obj | None:
        """Where its status says it is placed, or None."""
        return placement_target(self.status)

    @property
    def runs(self) -> bool:
        """Placed somewhere and active (its children hold capacity or are on their way)."""
        return bool(self.target) and self.status.get("phase") in ACTIVE_PHASES


TargetKey = tuple[str, str]


class RecordIndex:
    """What rounds look up among thousands of settled records, kept as the records change: a round costs what is
    queued or changing, not the size of the fleet. Ordered sets are dicts (insertion order, as the records)."""

    def __init__(self) -> None:
        self.queued: dict[str, None] = {}
        self.evicting: dict[str, None] = {}
        self.recurring: dict[str, None] = {}
        self.clocked: dict[str, None] = {}  # an unschedulable or interruption clock runs
        self.policies: Counter[str] = Counter()
        self.phases: Counter[str] = Counter()
        self.on_target: dict[TargetKey, dict[str, None]] = {}
        self.by_uid: dict[str, str] = {}  # uid -> key, for every record seen whole (admitted or not yet)

    def add(self, record: WorkloadRecord, name: str | None = None) -> None:
        self._apply(record, name, adding=True)

    def remove(self, record: WorkloadRecord, name: str | None = None) -> None:
        self._apply(record, name, adding=False)

    def _apply(self, record: WorkloadRecord, name: str | None, adding: bool) -> None:
        key = record.key
        for field_name, member, holds in (
            ("queued", self.queued, record.queued is not None),
            ("eviction", self.evicting, record.eviction is not None),
            ("recurring", self.recurring, record.recurring),
        ):
            if name in (None, field_name) and holds:
                _mark(member, key, adding)
        if name in (None, "unschedulable_since", "interrupted_node"):
            if record.unschedulable_since is not None or record.interrupted_node is not None:
                _mark(self.clocked, key, adding)
            elif not adding:
                self.clocked.pop(key, None)
        if name in (None, "obj") and record.uid:
            if adding:
                self.by_uid[record.uid] = key
            elif self.by_uid.get(record.uid) == key:
                del self.by_uid[record.uid]
        if name in (None, "policy") and record.policy is not None:
            _count(self.policies, record.policy, 1 if adding else -1)
        if name in (None, "status"):
            phase = record.status.get("phase")
            if phase:
                _count(self.phases, str(phase), 1 if adding else -1)
            target = record.target
            if target:
                where = (str(target.get("kind")), str(target.get("name")))
                keys = self.on_target.setdefault(where, {})
                _mark(keys, key, adding)
                if not keys:
                    del self.on_target[where]


def _mark(member: dict[str, None], key: str, adding: bool) -> None:
    if adding:
        member[key] = None
    else:
        member.pop(key, None)


def _count(counter: Counter[str], value: str, delta: int) -> None:
    counter[value] += delta
    if counter[value] <= 0:
        del counter[value]


class Records(Mapping[str, WorkloadRecord]):
    """The store: workload key -> its record, with the uid index child events map back through, and the
    RecordIndex of what rounds look up."""

    def __init__(self) -> None:
        self._by_key: dict[str, WorkloadRecord] = {}
        self.index = RecordIndex()

    def __getitem__(self, key: str) -> WorkloadRecord:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    # The dict's own views: a round walks every record a few times, and Mapping's would look each key up again.
    def items(self) -> ItemsView[str, WorkloadRecord]:
        return self._by_key.items()

    def values(self) -> ValuesView[WorkloadRecord]:
        return self._by_key.values()

    def get(self, key: str, default: WorkloadRecord | None = None) -> WorkloadRecord | None:  # type: ignore[override]
        return self._by_key.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def add(self, key: str) -> WorkloadRecord:
        """The record of ``key``, created empty when there is none."""
        record = self._by_key.get(key)
        if record is None:
            record = self._by_key[key] = WorkloadRecord(key)
            record.index = self.index
            self.index.add(record)
        return record

    def drop(self, key: str) -> WorkloadRecord | None:
        record = self._by_key.pop(key, None)
        if record is not None:
            self.index.remove(record)
            record.index = None
        return record

    def status_of(self, key: str) -> Obj | None:
        record = self._by_key.get(key)
        return record.status if record is not None else None

    def queued(self) -> dict[str, Queued]:
        """Every workload waiting to be decided."""
        found = {key: self._by_key[key].queued for key in self.index.queued}
        return {key: entry for key, entry in found.items() if entry is not None}

    def keyed(self, keys: Iterable[str]) -> list[WorkloadRecord]:
        """The records of ``keys`` (an index's), as a list: the caller may change the index while it walks them."""
        return [self._by_key[key] for key in list(keys)]

    def statuses(self) -> FieldView:
        """Workload key -> its last known status."""
        return FieldView(self._by_key, "status")

    def views(self) -> FieldView:
        """Workload key -> what admission reads of it, for the workloads seen whole."""
        return FieldView(self._by_key, "obj")


class FieldView(Mapping[str, Obj]):
    """Workload key -> one field of its record, read through the records (no copy); a None field is absent."""

    def __init__(self, records: Mapping[str, WorkloadRecord], name: str) -> None:
        self._records = records
        self._name = name

    def __getitem__(self, key: str) -> Obj:
        value: Obj | None = getattr(self._records[key], self._name)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (key for key, record in self._records.items() if getattr(record, self._name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
