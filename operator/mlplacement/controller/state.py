"""In-memory caches of the objects placement reads, fed by watch events: no listing per reconcile."""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from mlplacement.api.constants import GPU_RESOURCE, LABEL_PLACEHOLDER_FOR, LABEL_WORKLOAD_UID, REVISION_ANNOTATIONS
from mlplacement.api.workload import MLWorkload
from mlplacement.config import OperatorConfig
from mlplacement.core.keyring import Keyring, parse_keyring
from mlplacement.core.ledger import CapacityLedger, pod_bound_gpus, workload_uid
from mlplacement.core.reconcile import admission_view
from mlplacement.core.snapshot import (
    INTERRUPTION_TAINTS,
    TERMINAL_POD_PHASES,
    NodeFacts,
    Snapshot,
    Target,
    build_snapshot,
    gpu_pools_from_facts,
    node_facts,
    node_interruption,
    pod_cpu_memory_requests,
    pod_gpu_requests,
    pod_gpu_share,
    signals_from_configmap,
)

Obj = Mapping[str, Any]


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def _admission_inputs(view: Obj) -> tuple[Any, ...]:
    meta = view.get("metadata") or {}
    return (view.get("spec"), meta.get("annotations"), meta.get("labels"), meta.get("uid"))


def tracked_pod(pod: Obj) -> bool:
    """Pods placement reads: those holding GPUs (capacity) and those of our children (scheduling outcome)."""
    return pod_gpu_requests(pod) > 0 or bool(workload_uid(pod))


def unschedulable_message(pod: Obj) -> str | None:
    """The scheduler's reason when it could not place a pending pod (its PodScheduled condition), else None."""
    if (pod.get("status") or {}).get("phase") != "Pending" or (pod.get("spec") or {}).get("nodeName"):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return str(condition.get("message") or "unschedulable")
    return None


def _slim_node(node: Obj) -> dict[str, Any]:
    """Only what the snapshot reads: keeps memory flat with thousands of nodes."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    return {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "spec": {
            "unschedulable": (node.get("spec") or {}).get("unschedulable", False),
            # Only the taints that say the node is going away: the rest are the scheduler's business.
            "taints": [
                {"key": t.get("key")}
                for t in (node.get("spec") or {}).get("taints") or []
                if t.get("key") in INTERRUPTION_TAINTS
            ],
        },
        "status": {
            "allocatable": {
                key: value
                for key, value in (status.get("allocatable") or {}).items()
                if key in (GPU_RESOURCE, "cpu", "memory")
            },
            "conditions": [{"type": c.get("type"), "status": c.get("status")} for c in status.get("conditions") or []],
        },
    }


def _slim_pod(pod: Obj) -> dict[str, Any]:
    """What capacity (GPU requests, node) and the scheduling outcome of our children need; no more."""
    spec = pod.get("spec") or {}
    uid = workload_uid(pod)
    placeholder = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_PLACEHOLDER_FOR)
    labels = {LABEL_WORKLOAD_UID: uid} if uid else {}
    if placeholder:
        labels[LABEL_PLACEHOLDER_FOR] = placeholder  # its GPUs are free for placement (core.snapshot)
    slim: dict[str, Any] = {
        "metadata": {"labels": labels} if labels else {},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [{"resources": c.get("resources") or {}} for c in spec.get("containers") or []],
            "initContainers": [
                {"resources": c.get("resources") or {}, "restartPolicy": c.get("restartPolicy")}
                for c in spec.get("initContainers") or []
            ],
        },
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }
    message = unschedulable_message(pod)
    if message is not None:
        slim["status"]["unschedulable"] = message[:1024]
        # Which child it belongs to: a moved workload's old pod (still being collected) is not its new one.
        slim["spec"]["nodeSelector"] = dict(spec.get("nodeSelector") or {})
    return slim


@dataclass
class FleetCache:
    """Latest known state of everything placement reads, keyed by object key."""

    config: OperatorConfig
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    gpu_pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    edge_clusters: dict[str, Obj] = field(default_factory=dict)
    workspaces: dict[str, Obj] = field(default_factory=dict)
    policies: dict[str, Obj] = field(default_factory=dict)
    signals_configmap: Obj | None = None
    keyring: Keyring = field(default_factory=Keyring)
    workload_phases: dict[str, dict[str, str]] = field(default_factory=dict)  # namespace -> name -> phase (dependsOn)
    # EdgeCluster name -> status from its latest probe; newer than the written status, which skips no-news.
    edge_live: dict[str, Obj] = field(default_factory=dict)
    # GPUs committed to children whose pods are not bound yet (core.ledger); read by every snapshot.
    ledger: CapacityLedger = field(default_factory=CapacityLedger)
    # EdgeCluster name -> GPUs of bound pods per workload uid on it, from its latest good probe (set_edge_bound).
    edge_bound: dict[str, dict[str, int]] = field(default_factory=dict)
    # Workload uid -> GPUs its bound pods hold here and on every edge (a uid runs in one place): kept as pods and
    # probes change, and handed to the ledger per workload.
    bound_by_workload: dict[str, int] = field(default_factory=dict)
    # Workload uid -> revision (generation, target) of its child on this cluster, as the child watch saw it.
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Pod key -> (node, CPU millicores, memory bytes) it requests, and their sums per node: a node must hold a
    # pod's CPU and memory as well as its GPUs.
    pod_cpu_memory: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    cpu_memory_used: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Node name -> what placement reads of it, parsed once per Node change; GPUs its pods take, summed as pods
    # change. A round builds pools from these, and not at all while no node, pod or signal changed (_pools).
    node_facts: dict[str, NodeFacts] = field(default_factory=dict)
    reclaimed: dict[str, str] = field(default_factory=dict)  # node name -> why it is about to be reclaimed
    gpus_used: dict[str, int] = field(default_factory=dict)
    _pools_version: int = 0
    _pools: tuple[tuple[Any, ...], list[Target]] | None = None
    # Namespace -> its labels: team quotas may select namespaces by label.
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def on_namespace(self, namespace: Obj, deleted: bool) -> bool:
        """True when the namespace's labels changed (quota teams may have changed with them)."""
        meta = namespace.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = dict(meta.get("labels") or {})
        if deleted:
            return self.namespace_labels.pop(name, None) is not None
        if self.namespace_labels.get(name) == labels:
            return False
        self.namespace_labels[name] = labels
        return True

    def on_node(self, node: Obj, deleted: bool) -> None:
        self._store(self.nodes, node, deleted, _slim_node)
        name = object_key(node)
        why = None if deleted else node_interruption(self.nodes[name])
        if why is None:
            self.reclaimed.pop(name, None)
        else:
            self.reclaimed[name] = why
        facts = None if deleted else node_facts(self.nodes[name], self.config.pool_label_keys)
        if facts != self.node_facts.get(name):
            if facts is None:
                del self.node_facts[name]
            else:
                self.node_facts[name] = facts
            self._pools_version += 1

    def on_pod(self, pod: Obj, deleted: bool) -> bool:
        """Any pod: those placement tracks (GPU requests or ours) are kept, every bound one counts on its node's
        CPU and memory. True when what placement reads changed."""
        terminal = (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES
        key = object_key(pod)
        tracked = tracked_pod(pod)
        if tracked or key in self.gpu_pods:
            before = self.gpu_pods.get(key)
            self._store(self.gpu_pods, pod, deleted or terminal or not tracked, _slim_pod)
            after = self.gpu_pods.get(key)
            self._use_gpus(pod_gpu_share(before) if before else None, pod_gpu_share(after) if after else None)
            self._bind(pod_bound_gpus(before) if before else None, pod_bound_gpus(after) if after else None)
        return self._count_cpu_memory(key, pod, deleted or terminal) or tracked or deleted

    def set_edge_bound(self, edge: str, bound: Mapping[str, int] | None) -> None:
        """What an edge's latest good probe found bound per workload uid (None: the edge is gone)."""
        before = self.edge_bound.pop(edge, {})
        if bound is not None:
            self.edge_bound[edge] = dict(bound)
        for uid in set(before) | set(bound or {}):
            self._bind((uid, before.get(uid, 0)), (uid, (bound or {}).get(uid, 0)))

    def _bind(self, before: tuple[str, int] | None, after: tuple[str, int] | None) -> None:
        """A pod's (or an edge's) share of a workload's bound GPUs changed from ``before`` to ``after``."""
        deltas: dict[str, int] = {}
        for share, sign in ((before, -1), (after, 1)):
            if share is not None:
                deltas[share[0]] = deltas.get(share[0], 0) + sign * share[1]
        for uid, delta in deltas.items():
            if not delta:
                continue
            total = max(0, self.bound_by_workload.get(uid, 0) + delta)
            if total:
                self.bound_by_workload[uid] = total
            else:
                self.bound_by_workload.pop(uid, None)
            self.ledger.set_bound(uid, total)

    def _use_gpus(self, before: tuple[str, int] | None, after: tuple[str, int] | None) -> None:
        """A pod's share of its node's GPUs changed from ``before`` to ``after`` ((node, GPUs) or None)."""
        if before == after:
            return
        for share, sign in ((before, -1), (after, 1)):
            if share is not None:
                total = self.gpus_used.get(share[0], 0) + sign * share[1]
                if total:
                    self.gpus_used[share[0]] = total
                else:
                    self.gpus_used.pop(share[0], None)
        self._pools_version += 1

    def gpu_pools(self, signals_configmap: Obj | None, topology_labels: tuple[str, ...]) -> list[Target]:
        """The GPU pools as the nodes, their pods and the signals say now; built again only after a change."""
        key = (self._pools_version, topology_labels)
        memo = self._pools
        if memo is not None and memo[0][:2] == key and memo[0][2] is signals_configmap:
            return memo[1]
        signals, _problem = signals_from_configmap(signals_configmap)
        pools = gpu_pools_from_facts(
            self.node_facts.values(), self.gpus_used, signals, topology_labels, self.cpu_memory_used
        )
        # The ConfigMap is held by the memo: its identity says the signals did not change.
        self._pools = ((*key, signals_configmap), pools)
        return pools

    def _count_cpu_memory(self, key: str, pod: Obj, gone: bool) -> bool:
        """Keep what every bound pod requests of its node's CPU and memory, summed per node (the pods themselves
        are not kept: most hold no GPU). True when a node's sums changed."""
        before = self.pod_cpu_memory.get(key)
        node_name = (pod.get("spec") or {}).get("nodeName")
        now = None if gone or not node_name else (str(node_name), *pod_cpu_memory_requests(pod))
        if now == before or (now is not None and not (now[1] or now[2]) and before is None):
            return False
        self.pod_cpu_memory.pop(key, None)
        if before is not None:
            node, cpu, memory = before
            used = self.cpu_memory_used[node]
            self.cpu_memory_used[node] = (used[0] - cpu, used[1] - memory)
            if self.cpu_memory_used[node] == (0, 0):
                del self.cpu_memory_used[node]
        if now is not None and (now[1] or now[2]):
            node, cpu, memory = now
            self.pod_cpu_memory[key] = now
            used = self.cpu_memory_used.get(node, (0, 0))
            self.cpu_memory_used[node] = (used[0] + cpu, used[1] + memory)
        self._pools_version += 1
        return True

    def on_child(self, child: Obj, deleted: bool) -> None:
        """A Job or Deployment of ours on this cluster: what it commits goes into the ledger, its revision into
        ``children`` (what the watch says exists, so an unchanged workload is never re-applied)."""
        self.ledger.observe_child(child, deleted)
        uid = workload_uid(child)
        if not uid:
            return
        if deleted:
            self.children.pop(uid, None)
        else:
            annotations = (child.get("metadata") or {}).get("annotations") or {}
            self.children[uid] = tuple(str(annotations.get(key)) for key in REVISION_ANNOTATIONS)

    def unschedulable(self) -> dict[str, tuple[str, str]]:
        """Workload uid -> (the pool its pod is pinned to, the scheduler's message), for children with a pending pod
        the scheduler could not place."""
        found: dict[str, tuple[str, str]] = {}
        unbound: dict[str, int] = {}
        for pod in self.gpu_pods.values():
            message = pod["status"].get("unschedulable")
            uid = workload_uid(pod)
            if message and uid:
                selector = pod["spec"].get("nodeSelector") or {}
                pool = next((str(selector[k]) for k in self.config.pool_label_keys if k in selector), "")
                found.setdefault(uid, (pool, message))
            elif uid and not pod["spec"].get("nodeName"):
                unbound[uid] = unbound.get(uid, 0) + 1
        # A gang runs all or nothing: workers not bound, whatever holds them (a scheduling gate, a scheduler
        # that does not say Unschedulable), start the same clock, and past the grace the whole gang is released.
        for uid, count in unbound.items():
            commitment = self.ledger.get(uid)
            if uid in found or commitment is None or not commitment.gang or commitment.target[0] != "GPUPool":
                continue
            found[uid] = (commitment.target[1], f"{count} of the gang's workers not bound yet")
        return found

    def interrupted(self) -> dict[str, tuple[str, str, str]]:
        """Workload uid -> (pod key, node, why) for a pod of its child on a node about to be reclaimed."""
        reasons = self.reclaimed
        if not reasons:
            return {}
        found: dict[str, tuple[str, str, str]] = {}
        for key, pod in sorted(self.gpu_pods.items()):
            node_name = pod["spec"].get("nodeName")
            uid = workload_uid(pod)
            if uid and node_name in reasons:
                found.setdefault(uid, (key, node_name, reasons[node_name]))
        return found

    def on_edge_cluster(self, obj: Obj, deleted: bool) -> None:
        self._store(self.edge_clusters, obj, deleted, dict)

    def on_workspace(self, obj: Obj, deleted: bool) -> None:
        self._store(self.workspaces, obj, deleted, dict)

    def on_policy(self, obj: Obj, deleted: bool) -> bool:
        """Keep what admission reads of a policy; True when that changed (workloads must be admitted again).

        The policy's own status writes (ours included) change nothing here, so they cost no pass over the fleet.
        """
        key = object_key(obj)
        before = self.policies.get(key)
        if deleted:
            return self.policies.pop(key, None) is not None
        view = admission_view(obj)
        if before is not None and _admission_inputs(before) == _admission_inputs(view):
            return False
        self.policies[key] = {**view, "status": obj.get("status") or {}}
        return True

    def on_signals(self, configmap: Obj | None) -> None:
        self.signals_configmap = configmap

    def on_trusted_keys(self, data: Mapping[str, str] | None, base64_encoded: bool) -> Keyring:
        """Reload the keyring from a Secret's (base64) or ConfigMap's data; returns it (problems included)."""
        decoded: dict[str, str | bytes] = {}
        for entry, value in (data or {}).items():
            decoded[entry] = base64.b64decode(value) if base64_encoded else value
        self.keyring = parse_keyring(decoded)
        return self.keyring

    def on_workload_phase(self, obj: Obj, deleted: bool) -> None:
        meta = obj.get("metadata") or {}
        phase = None if deleted else str((obj.get("status") or {}).get("phase") or "")
        self.set_phase(str(meta.get("namespace") or ""), str(meta.get("name")), phase)

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        phases = self.workload_phases.setdefault(namespace, {})
        if phase is None:
            phases.pop(name, None)
        else:
            phases[name] = phase

    def dependency_phases(self, namespace: str) -> Mapping[str, str]:
        """Phase by workload name in ``namespace`` (what dependsOn reads); no copy, admission runs per object."""
        return self.workload_phases.get(namespace) or {}

    def snapshot(self, now: datetime, active_runs: Mapping[str, int] | None = None) -> Snapshot:
        reserved, reserved_pods = self.ledger.outstanding_pods()
        return build_snapshot(
            now=now,
            pools=self.gpu_pools(self.signals_configmap, tuple(sorted(self.topology_labels()))),
            edge_clusters=[
                {**obj, "status": self.edge_live[name]} if name in self.edge_live else obj
                for name, obj in self.edge_clusters.items()
            ],
            databricks_workspaces=self.workspaces.values(),
            signals_configmap=self.signals_configmap,
            reserved=reserved,
            reserved_pods=reserved_pods,
            active_runs=active_runs,
        )

    def topology_labels(self) -> set[str]:
        """The node labels policies hold gangs to (gangs.topologyLabel): the snapshot keeps pools per block of
        them. Read from every policy, verified or not: it only shapes what the snapshot counts, never a decision."""
        labels = set()
        for policy in self.policies.values():
            label = (((policy.get("spec") or {}).get("gangs") or {}).get("topologyLabel")) if policy else None
            if isinstance(label, str) and label:
                labels.add(label)
        return labels

    @staticmethod
    def _store(store: dict[str, Any], obj: Obj, deleted: bool, slim: Any) -> None:
        key = object_key(obj)
        if deleted:
            store.pop(key, None)
        else:
            store[key] = slim(obj)


class WorkloadIndex(Mapping[str, MLWorkload]):
    """Workload uid -> its validated model, rebuilt on demand from the admission view the controller keeps.

    A pydantic model per workload costs about 4 KB; child events and edge inventories need a few at a time,
    so only the most recently used are kept.
    """

    def __init__(self, views: Mapping[str, Obj], keep: int = 512) -> None:
        self._views = views
        self._keep = keep
        self._keys: dict[str, str] = {}  # uid -> namespace/name
        self._recent: OrderedDict[str, MLWorkload] = OrderedDict()

    def remember(self, uid: str, key: str, workload: MLWorkload) -> None:
        self._keys[uid] = key
        self._hold(uid, workload)

    @property
    def keys_by_uid(self) -> Mapping[str, str]:
        """Workload uid -> namespace/name, for every workload remembered."""
        return self._keys

    def forget(self, uid: str) -> None:
        self._keys.pop(uid, None)
        self._recent.pop(uid, None)

    def __getitem__(self, uid: str) -> MLWorkload:
        if uid in self._recent:
            self._recent.move_to_end(uid)
            return self._recent[uid]
        view = self._views.get(self._keys[uid])
        if view is None:
            raise KeyError(uid)
        try:
            workload = MLWorkload.model_validate(view)
        except ValidationError:  # replaced by an invalid spec since: refused, so no longer ours to follow
            raise KeyError(uid) from None
        self._hold(uid, workload)
        return workload

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def _hold(self, uid: str, workload: MLWorkload) -> None:
        self._recent[uid] = workload
        self._recent.move_to_end(uid)
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
