"""Two operator replicas with leader election on one control plane, and who holds the Lease: what the
high-availability and restart modules share."""

from __future__ import annotations

from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

LEASE = ("lease", "mlplacement-leader", "-n", "mlplacement-system")


def install_with_replicas(plane: ControlPlane, namespace: str, nodes: int, gpus_per_node: int, prefix: str) -> None:
    """CRDs, the namespace, the trusted key, a signed default policy, ``nodes`` GPU nodes in one pool, then two
    replicas (users replica-a and replica-b, so the audit log tells their writes apart)."""
    plane.install_home(REPO / "crds", (namespace,), keyring_core.public_pem(KEY), signed(make_policy("default")))
    for index in range(nodes):
        name = f"{prefix}-gpu-{index}"
        plane.apply(node(name, "a100-euw1"))
        plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", gpu_status(gpus_per_node))
    started = [Operator(plane, user="replica-a"), Operator(plane, user="replica-b")]
    for replica in started:
        replica.start()
    plane.replicas = started  # type: ignore[attr-defined]


def stop_replicas(plane: ControlPlane) -> None:
    for replica in replicas(plane):
        replica.kill()


def replicas(plane: ControlPlane) -> list[Operator]:
    return plane.replicas  # type: ignore[attr-defined,no-any-return]


def holder(plane: ControlPlane) -> str:
    lease = plane.get(*LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def leader(plane: ControlPlane) -> Operator:
    """The replica named on the Lease (waiting for one to hold it)."""
    name = wait_until(lambda: holder(plane), 60, "a replica to hold the lease")
    return next(r for r in replicas(plane) if name.startswith(f"{r.user}_"))
