"""Child objects built purely from a workload and its placement: Job, or Deployment + Service.

One builder for every runtime: the in-cluster GPU-pool runtime applies these locally, the edge runtime
applies the same objects to a remote cluster with origin labels. Names are deterministic, so a retry
after a crash gets 409 Conflict instead of a second child.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlplacement.api.constants import (
    ANNOTATION_EXPECTED_RUN,
    ANNOTATION_INPUTS,
    ANNOTATION_TARGET,
    ANNOTATION_WORKLOAD_GENERATION,
    GPU_RESOURCE,
    LABEL_COST_TAG_PREFIX,
    LABEL_MANAGED_BY,
    LABEL_PLACEHOLDER_FOR,
    LABEL_WORKLOAD_NAME,
    LABEL_WORKLOAD_UID,
    POOL_LABEL_KEYS,
)
from mlplacement.api.policy import Prewarming
from mlplacement.api.workload import MLWorkloadSpec, WorkloadType
from mlplacement.core.snapshot import Target

MANAGER = "mlplacement"
SERVICE_PORT = 8080
# torchrun's default rendezvous port: worker 0 listens there, the others reach it by its stable DNS name.
RENDEZVOUS_PORT = 29500
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
# An Indexed Job's pods carry their index here (and as JOB_COMPLETION_INDEX in their environment).
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# Taints that spot node pools commonly carry; tolerating them lets spot-placed work schedule there.
SPOT_TOLERATIONS = (
    {"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    {"key": "eks.amazonaws.com/capacityType", "operator": "Equal", "value": "SPOT", "effect": "NoSchedule"},
)
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
# On spot capacity a pod learns of an interruption from its own annotations (the operator adds
# mlplacement.io/checkpoint-requested when the node is tainted for reclaim), mounted live through the downward API,
# and from SIGTERM when the node drains. 90 s of grace fits in EC2's two-minute notice (GKE gives 15 s at most).
PODINFO_VOLUME = "mlplacement-podinfo"
PODINFO_PATH = "/etc/mlplacement/podinfo"
CHECKPOINT_FILE_ENV = "MLPLACEMENT_CHECKPOINT_SIGNAL_FILE"
SPOT_TERMINATION_GRACE_SECONDS = 90
# Pods stopped by a disruption (preemption, eviction, a drained node) do not fail the Job: it makes another.
DISRUPTION_IS_NOT_FAILURE = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
}
_LABEL_VALUE_RE = re.compile(r"[^A-Za-z0-9_.-]")


def child_name(workload_name: str) -> str:
    """Deterministic, DNS-safe child name (<= 63 chars, so it also fits a Service and pod labels)."""
    name = f"mlw-{workload_name}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(workload_name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-.')}-{digest}"


def label_value(value: str) -> str:
    cleaned = _LABEL_VALUE_RE.sub("-", value)[:63].strip("-_.")
    return cleaned


def child_labels(name: str, uid: str, cost_tags: Mapping[str, str]) -> dict[str, str]:
    """Labels of every child: who made it, for which workload, and the cost tags. Never Argo CD's."""
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_WORKLOAD_NAME: label_value(name),
        LABEL_WORKLOAD_UID: uid,
    }
    for key, value in sorted(cost_tags.items()):
        labels[f"{LABEL_COST_TAG_PREFIX}{label_value(key)}"] = label_value(value)
    return labels


def revision_annotations(generation: int | None, target: Target) -> dict[str, str]:
    """What a child was built for; the runtimes replace a child whose revision differs."""
    return {ANNOTATION_WORKLOAD_GENERATION: str(generation), ANNOTATION_TARGET: f"{target.kind.value}/{target.name}"}


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def input_env(annotations: Mapping[str, str]) -> list[dict[str, str]]:
    """A pipeline stage's inputs (its mlplacement.io/inputs annotation) as MLPLACEMENT_INPUT_<NAME>_URI and
    _DIGEST: the stage's code can check that what it reads is what its lineage records."""
    text = annotations.get(ANNOTATION_INPUTS)
    if not text:
        return []
    try:
        inputs = json.loads(text)
    except ValueError:
        return []
    env = []
    for name, artifact in sorted(inputs.items() if isinstance(inputs, dict) else []):
        if not isinstance(artifact, dict):
            continue
        prefix = "MLPLACEMENT_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", str(name)).upper()
        env.append({"name": f"{prefix}_URI", "value": str(artifact.get("uri") or "")})
        env.append({"name": f"{prefix}_DIGEST", "value": str(artifact.get("digest") or "")})
    return env


def _container(spec: MLWorkloadSpec, extra_env: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if spec.resources.cpu is not None:
        requests["cpu"] = str(spec.resources.cpu)
    if spec.resources.memory is not None:
        requests["memory"] = str(spec.resources.memory)
        limits["memory"] = str(spec.resources.memory)
    if spec.resources.gpus:
        limits[GPU_RESOURCE] = str(spec.resources.gpus)
        requests[GPU_RESOURCE] = str(spec.resources.gpus)
    container: dict[str, Any] = {"name": "workload", "image": spec.image, "resources": {}}
    if requests:
        container["resources"]["requests"] = requests
    if limits:
        container["resources"]["limits"] = limits
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    env = [{"name": e.name, "value": e.value} for e in spec.env] + [dict(e) for e in extra_env]
    if env:
        container["env"] = env
    if spec.type is WorkloadType.INFERENCE:
        container["ports"] = [{"name": "http", "containerPort": SERVICE_PORT}]
    return container


def _pod_spec(
    spec: MLWorkloadSpec,
    target: Target,
    pool_label_key: str | None,
    restart: str,
    extra_env: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    pod: dict[str, Any] = {"restartPolicy": restart, "containers": [_container(spec, extra_env)]}
    if pool_label_key is not None:
        pod["nodeSelector"] = {pool_label_key: target.name}
        if target.pin is not None:  # a gang held to one topology block (the policy's gangs.topologyLabel)
            pod["nodeSelector"][target.pin[0]] = target.pin[1]
    tolerations: list[dict[str, Any]] = []
    if spec.resources.gpus:
        tolerations.append(dict(GPU_TOLERATION))
    if target.spot:
        tolerations.extend(dict(t) for t in SPOT_TOLERATIONS)
        pod["terminationGracePeriodSeconds"] = SPOT_TERMINATION_GRACE_SECONDS
        pod["volumes"] = [
            {
                "name": PODINFO_VOLUME,
                "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]},
            }
        ]
        container = pod["containers"][0]
        container["volumeMounts"] = [{"name": PODINFO_VOLUME, "mountPath": PODINFO_PATH, "readOnly": True}]
        container["env"] = [
            *container.get("env", []),
            {"name": CHECKPOINT_FILE_ENV, "value": f"{PODINFO_PATH}/annotations"},
        ]
    if tolerations:
        pod["tolerations"] = tolerations
    return pod


def build_children(
    workload: Mapping[str, Any],
    spec: MLWorkloadSpec,
    target: Target,
    *,
    pool_label_key: str | None = POOL_LABEL_KEYS[0],
    namespace: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    extra_annotations: Mapping[str, str] | None = None,
    owned: bool = True,
) -> list[dict[str, Any]]:
    """The objects that run ``workload`` on ``target``: a Job, or a Deployment and its Service.

    ``pool_label_key`` pins pods to the pool's nodes (None on an edge cluster, which is the target);
    ``owned`` adds the owner reference (not across clusters, where the owner does not exist).
    """
    metadata = workload["metadata"]
    name, uid = metadata["name"], metadata.get("uid", "")
    annotations = metadata.get("annotations") or {}
    labels = {**child_labels(name, uid, spec.cost_tags), **(extra_labels or {})}
    child_meta: dict[str, Any] = {
        "name": child_name(name),
        "namespace": namespace or metadata.get("namespace"),
        "labels": labels,
    }
    if extra_annotations:
        child_meta["annotations"] = dict(extra_annotations)
    if owned:
        child_meta["ownerReferences"] = [
            owner_reference(workload.get("apiVersion", ""), workload.get("kind", ""), name, uid)
        ]
    selector = {LABEL_WORKLOAD_UID: uid}
    pod_labels = dict(labels)
    if spec.type is WorkloadType.INFERENCE:
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": child_meta,
            "spec": {
                "replicas": spec.effective_replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": _pod_spec(spec, target, pool_label_key, "Always", input_env(annotations)),
                },
            },
        }
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": dict(child_meta),
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": SERVICE_PORT}]},
        }
        return [deployment, service]
    workers = spec.workers
    env = input_env(annotations)
    if workers > 1:
        env += gang_env(child_meta["name"], workers, spec.resources.gpus)
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_meta,
        "spec": {
            # Retries are the operator's (spec.retry), not the Job controller's: one pod per attempt, and a gang
            # that loses a worker fails whole (its rendezvous would wait for the lost worker forever).
            "backoffLimit": 0,
            "podFailurePolicy": DISRUPTION_IS_NOT_FAILURE,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": _pod_spec(spec, target, pool_label_key, "Never", env),
            },
        },
    }
    if spec.databricks is not None and spec.databricks.timeout_seconds:
        job["spec"]["activeDeadlineSeconds"] = spec.databricks.timeout_seconds
    if workers == 1:
        return [job]
    _gang(job, child_meta, selector, workers)
    return [job, _headless_service(child_meta, selector)]  # the Job first: the ledger reads its pods


def gang_env(name: str, workers: int, gpus: int) -> list[dict[str, Any]]:
    """What torchrun (and most launchers) needs in every pod of a gang, plain and as torchrun's PET_ variables:
    worker 0 by its stable DNS name (pod hostname ``<job>-0`` under the headless Service ``<job>``), the world
    size in nodes, this pod's rank from its completion index, and a process per GPU."""
    rank = {"valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}}
    plain = {
        "MASTER_ADDR": f"{name}-0.{name}",
        "MASTER_PORT": str(RENDEZVOUS_PORT),
        "WORLD_SIZE": str(workers),
        "NNODES": str(workers),
        "NPROC_PER_NODE": str(max(1, gpus)),
    }
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in plain.items()]
    env += [{"name": "NODE_RANK", **rank}, {"name": "RANK", **rank}]
    env += [{"name": f"PET_{key}", "value": plain[key]} for key in ("MASTER_ADDR", "MASTER_PORT", "NNODES")]
    env += [{"name": "PET_NPROC_PER_NODE", "value": plain["NPROC_PER_NODE"]}, {"name": "PET_NODE_RANK", **rank}]
    return env


def _gang(job: dict[str, Any], child_meta: Mapping[str, Any], selector: Mapping[str, str], workers: int) -> None:
    """Make ``job`` the gang's Indexed Job: all workers at once, each on a node of its own (the placement counted
    them so), resolvable by name through the headless Service of the same name."""
    name = child_meta["name"]
    spec = job["spec"]
    spec.update(completionMode="Indexed", completions=workers, parallelism=workers)
    pod = spec["template"]["spec"]
    pod["subdomain"] = name
    pod["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": dict(selector)}, "topologyKey": HOSTNAME_TOPOLOGY}
            ]
        }
    }


def _headless_service(child_meta: Mapping[str, Any], selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": dict(child_meta),
        "spec": {
            "clusterIP": "None",
            "selector": dict(selector),
            # Workers find worker 0 before any of them is ready: rendezvous is how they become ready.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def placeholder_name(workload_name: str) -> str:
    return child_name(f"{workload_name}-placeholder")


def build_placeholder(
    workload: Mapping[str, Any],
    target: Target,
    gpus: int,
    pods: int,
    expected: str,
    rules: Prewarming,
    pool_label_key: str = POOL_LABEL_KEYS[0],
) -> dict[str, Any]:
    """A Deployment of ``pods`` pods that hold ``gpus`` GPUs each on ``target`` and do nothing, at the
    policy's lowest PriorityClass: any real pod preempts them. Owned by the recurring workload."""
    metadata = workload["metadata"]
    name, uid = metadata["name"], metadata.get("uid", "")
    labels = {LABEL_MANAGED_BY: MANAGER, LABEL_WORKLOAD_NAME: label_value(name), LABEL_PLACEHOLDER_FOR: uid}
    pod: dict[str, Any] = {
        "priorityClassName": rules.priority_class_name,
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {pool_label_key: target.name},
        "containers": [
            {
                "name": "placeholder",
                "image": rules.image,
                "resources": {"requests": {GPU_RESOURCE: str(gpus)}, "limits": {GPU_RESOURCE: str(gpus)}},
            }
        ],
        "tolerations": [dict(GPU_TOLERATION), *(dict(t) for t in SPOT_TOLERATIONS if target.spot)],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": placeholder_name(name),
            "namespace": metadata.get("namespace"),
            "labels": labels,
            "annotations": {ANNOTATION_EXPECTED_RUN: expected, ANNOTATION_TARGET: f"{target.kind.value}/{target.name}"},
            "ownerReferences": [owner_reference(workload.get("apiVersion", ""), workload.get("kind", ""), name, uid)],
        },
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {LABEL_PLACEHOLDER_FOR: uid}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
