"""A signed daily-training MLWorkload runs on Databricks: real kube-apiserver, real operator process, real
databricks-sdk over HTTPS to the Jobs API stand-in. Skips without KUBEBUILDER_ASSETS."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy, make_workload
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, signed
from tests.standins.databricks import JobsStandIn

NAMESPACE = "team-recsys"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsStandIn]:
    with JobsStandIn(tls_dir=tmp_path_factory.mktemp("dbx-tls")) as server:
        yield server


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane, jobs: JobsStandIn) -> Iterator[ControlPlane]:
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    for namespace in ("mlplacement-system", NAMESPACE):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    secrets = {
        "mlplacement-trusted-keys": {"platform.pem": keyring_core.public_pem(KEY)},
        "dbx-token": {"token": jobs.state.token.encode()},
    }
    for name, data in secrets.items():
        control_plane.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": "mlplacement-system"},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            }
        )
    control_plane.apply(signed(make_policy("default")))
    control_plane.apply(
        {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "DatabricksWorkspace",
            "metadata": {"name": "dbx-eu"},
            "spec": {
                "host": jobs.host,
                "region": "eu-west-1",
                "tokenSecretRef": {"name": "dbx-token"},
                "probeIntervalSeconds": 10,
            },
        }
    )
    operator = Operator(
        control_plane,
        extra_env={"REQUESTS_CA_BUNDLE": str(jobs.ca_bundle), "MLPLACEMENT_DATABRICKS_POLL_SECONDS": "0.5"},
    )
    operator.start()
    control_plane.operator = operator  # type: ignore[attr-defined]
    yield control_plane
    operator.kill()


def status(plane: ControlPlane, name: str) -> dict[str, Any]:
    return ((plane.get("mlworkload", name, "-n", NAMESPACE) or {}).get("status")) or {}


def test_daily_training_lands_on_databricks_and_finishes(plane: ControlPlane, jobs: JobsStandIn) -> None:
    obj = make_workload(
        name="recsys-nightly",
        namespace=NAMESPACE,
        type="Training",
        resources={"gpus": 8},
        intent={"dataRegion": "eu-west-1", "dataSizeGB": 800, "trainingFrequency": "Daily", "priority": 500},
        targets={"allowed": ["Databricks"]},
        databricks={"task": {"spark_python_task": {"python_file": "dbfs:/recsys/train.py"}}},
    )
    plane.apply(signed(obj))
    final = wait_until(
        lambda: (s := status(plane, "recsys-nightly")).get("phase") in ("Succeeded", "Failed") and s,
        timeout=60,
        what="the Databricks run to finish",
    )
    assert final["phase"] == "Succeeded"
    finished = next(c for c in final["conditions"] if c["type"] == "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "Succeeded")
    assert final["placement"]["target"] == {"kind": "Databricks", "name": "dbx-eu", "region": "eu-west-1"}
    assert len(jobs.state.runs) == 1
    workspace = plane.get("databricksworkspace", "dbx-eu") or {}
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in workspace["status"]["conditions"])
    logged = plane.operator.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
    assert "recsys-nightly" in logged  # the log that is searched is the operator's, and it spoke of the run
    assert jobs.state.token not in logged
