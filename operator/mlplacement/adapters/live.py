"""Read-only view of a live cluster for `mlplacement whatif --live`: lists, never writes."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from mlplacement.api.constants import GROUP, VERSION
from mlplacement.core.whatif import LiveState

__all__ = ["LiveState", "read_live", "read_live_with"]


def read_live(kubeconfig: str | None, context: str | None, namespace: str, signals_configmap: str) -> LiveState:
    """Everything placement reads, as the operator would see it; only get and list calls (a read-only
    kubeconfig is enough)."""
    api = config.new_client_from_config(config_file=kubeconfig, context=context)
    return read_live_with(api, namespace, signals_configmap)


def read_live_with(api: client.ApiClient, namespace: str, signals_configmap: str) -> LiveState:
    """read_live through an existing client (the operator's own, in the webhook)."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    sanitize = api.sanitize_for_serialization

    def listed(kind: str) -> list[dict[str, Any]]:
        return list(custom.list_cluster_custom_object(GROUP, VERSION, kind).get("items") or [])

    state = LiveState(
        nodes=list(sanitize(core.list_node()).get("items") or []),
        pods=list(sanitize(core.list_pod_for_all_namespaces()).get("items") or []),
        edge_clusters=listed("edgeclusters"),
        workspaces=listed("databricksworkspaces"),
        policies=listed("placementpolicies"),
        workloads=listed("mlworkloads"),
    )
    try:
        state.signals_configmap = sanitize(core.read_namespaced_config_map(signals_configmap, namespace))
    except ApiException as exc:
        if exc.status != 404:
            raise
    return state
