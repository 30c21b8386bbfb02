"""The Helm chart, rendered by the real `helm` binary (`make tools` installs it; the tests skip without one)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from mlplacement.adapters.metrics import PrometheusMetrics
from mlplacement.config import ENV_PREFIX, OperatorConfig
from tests.conftest import REPO

CHART = REPO / "helm" / "mlplacement"
ALL_FEATURES = REPO / "tests" / "chart" / "values-all-features.yaml"
NAMESPACE = "mlplacement-system"
HELM = shutil.which("helm")
KUBERNETES_SCHEMA_VERSION = "1.31.0"  # the oldest release this chart is tested for
# Kinds from other projects' CRDs: kubernetes-validate has no schema for them.
FOREIGN_KINDS = {"ServiceMonitor", "Certificate", "Issuer"}

pytestmark = pytest.mark.skipif(HELM is None, reason="no helm on PATH: `make tools` installs the real binary")


def _yaml() -> YAML:
    return YAML(typ="safe", pure=True)


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *map(str, args)], capture_output=True, text=True, check=False)


def render(*args: str | Path) -> list[dict[str, Any]]:
    result = helm("template", "mlplacement", CHART, "--namespace", NAMESPACE, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in _yaml().load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(objects, kind)
    return found


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return render("-f", ALL_FEATURES)


@pytest.mark.parametrize("values", [[], ["-f", ALL_FEATURES]], ids=["default values", "every feature on"])
def test_helm_lint_strict_passes(values: list[str | Path]) -> None:
    result = helm("lint", "--strict", CHART, *values)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_install_has_exactly_the_expected_objects(default: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in default)
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"]
        + ["ClusterRole", "Role"]  # the viewer role for kubectl mlplacement
        + ["PodDisruptionBudget", "PriorityClass"]
        + ["CustomResourceDefinition"] * 5
    )


def test_placeholders_run_below_every_real_pod_and_never_preempt(default: list[dict[str, Any]]) -> None:
    priority = one(default, "PriorityClass")
    assert priority["metadata"]["name"] == "mlplacement-placeholder"  # the policy's default priorityClassName
    assert priority["value"] < 0
    assert priority["preemptionPolicy"] == "Never"
    assert priority["globalDefault"] is False
    assert of_kind(render("--set", "prewarming.priorityClass.create=false"), "PriorityClass") == []


def test_every_optional_feature_renders(everything: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in everything}
    assert {"ServiceMonitor", "ValidatingWebhookConfiguration", "PodDisruptionBudget", "Secret", "ConfigMap"} <= kinds
    configmaps = {c["metadata"]["name"] for c in of_kind(everything, "ConfigMap")}
    assert configmaps == {"mlplacement-signals", "mlplacement-dashboard"}


def test_pod_runs_non_root_read_only_without_capabilities(everything: list[dict[str, Any]]) -> None:
    deployment = one(everything, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090, "webhook": 9443}


@pytest.mark.parametrize("values", [[], ["-f", ALL_FEATURES]], ids=["default values", "every feature on"])
def test_operator_accepts_every_setting_the_chart_passes(values: list[str | Path]) -> None:
    (container,) = one(render(*values), "Deployment")["spec"]["template"]["spec"]["containers"]
    environ = {e["name"]: e.get("value", NAMESPACE) for e in container["env"] if e["name"].startswith(ENV_PREFIX)}
    config = OperatorConfig.from_env(environ)  # raises on an unknown or mistyped variable
    assert config.namespace == NAMESPACE
    assert config.trusted_keys_secret == "mlplacement-trusted-keys"


def _rules(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for role in of_kind(objects, kind) for rule in role["rules"]]


def test_rbac_has_no_wildcards(everything: list[dict[str, Any]]) -> None:
    for rule in _rules(everything, "ClusterRole") + _rules(everything, "Role"):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), rule


def test_secrets_and_configmaps_are_only_readable_by_name_in_the_release_namespace(
    everything: list[dict[str, Any]],
) -> None:
    cluster_resources = {r for rule in _rules(everything, "ClusterRole") for r in rule["resources"]}
    assert not cluster_resources & {"secrets", "configmaps"}
    (role,) = [r for r in of_kind(everything, "Role") if r["metadata"]["name"] != "mlplacement-viewer"]
    assert role["metadata"]["namespace"] == NAMESPACE
    by_resource = {rule["resources"][0]: rule for rule in role["rules"] if rule.get("verbs") == ["get"]}
    assert by_resource["secrets"]["resourceNames"] == [
        "mlplacement-trusted-keys",
        "edge-fra-kubeconfig",
        "dbx-prod-token",
    ]
    # Besides reading those, only the webhook certificate: patched by name, created once (create has no name).
    other = [rule for rule in role["rules"] if "secrets" in rule["resources"] and rule["verbs"] != ["get"]]
    assert other == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mlplacement-webhook-tls"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    assert by_resource["configmaps"] == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["mlplacement-signals"],
        "verbs": ["get"],
    }


def test_the_viewer_role_only_reads_and_never_secrets(everything: list[dict[str, Any]]) -> None:
    viewer = [o for o in everything if o["metadata"]["name"] == "mlplacement-viewer"]
    assert sorted(o["kind"] for o in viewer) == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    rules = [rule for o in viewer if o["kind"] in ("ClusterRole", "Role") for rule in o["rules"]]
    assert {verb for rule in rules for verb in rule["verbs"]} <= {"get", "list", "watch"}
    assert not any("secrets" in rule["resources"] for rule in rules)
    (configmaps,) = [rule for rule in rules if "configmaps" in rule["resources"]]
    assert configmaps["resourceNames"] == ["mlplacement-signals"]


def test_nodes_are_read_only_pods_only_annotated_and_user_objects_only_get_status_and_finalizer_writes(
    default: list[dict[str, Any]],
) -> None:
    rules = _rules(default, "ClusterRole")
    for rule in rules:
        if "nodes" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
        if "pods" in rule["resources"]:
            # patch: the checkpoint annotation on a child's pod whose node is about to be reclaimed.
            assert set(rule["verbs"]) <= {"get", "list", "watch", "patch"}
        if "mlworkloads" in rule["resources"]:
            assert "update" not in rule["verbs"]  # a user's spec is never edited
            if {"create", "delete"} & set(rule["verbs"]):
                # Pipeline stages only: a rule of its own, on MLWorkloads alone, nothing else with it.
                assert (rule["resources"], sorted(rule["verbs"])) == (["mlworkloads"], ["create", "delete"])


def test_pipeline_gate_kinds_are_readable_only_when_listed(default: list[dict[str, Any]]) -> None:
    assert not [rule for rule in _rules(default, "ClusterRole") if "datasets" in rule["resources"]]
    gated = render(
        "--set-json", 'pipelines.gateResources=[{"apiGroups":["data.example.com"],"resources":["datasets"]}]'
    )
    (rule,) = [rule for rule in _rules(gated, "ClusterRole") if "datasets" in rule["resources"]]
    assert rule == {"apiGroups": ["data.example.com"], "resources": ["datasets"], "verbs": ["get"]}


def test_every_rbac_rule_says_whether_the_framework_or_the_application_needs_it() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            start = number
            while lines[start - 1].strip().startswith("#"):
                start -= 1
            comment = lines[start].strip() if start < number else ""
            assert re.match(r"# (Framework|Application)", comment), f"rbac.yaml:{number + 1} has no reason"


def test_crd_templates_are_the_crds_in_the_repo(default: list[dict[str, Any]]) -> None:
    rendered = {crd["metadata"]["name"]: crd for crd in of_kind(default, "CustomResourceDefinition")}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        source = _yaml().load(path.read_text(encoding="utf-8"))
        name = source["metadata"]["name"]
        assert rendered[name]["spec"] == source["spec"], f"{name} differs from {path}"
        assert rendered[name]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert len(rendered) == len(list((REPO / "crds").glob("*.yaml")))


@pytest.mark.parametrize(
    ("flags", "crds", "kept"),
    [
        (["--set", "crds.enabled=false"], 0, 0),
        (["--set", "crds.keep=false"], 5, 0),
    ],
    ids=["crds.enabled=false installs none", "crds.keep=false drops the keep policy"],
)
def test_crd_switches(flags: list[str], crds: int, kept: int) -> None:
    found = of_kind(render(*flags), "CustomResourceDefinition")
    assert len(found) == crds
    assert sum(1 for c in found if "annotations" in c["metadata"]) == kept


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--set", "operator.workerLimit=0"], "/operator/workerLimit"),
        (["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (["--set", "leaderElection.enabled=false"], "replicaCount > 1 needs leaderElection.enabled"),
        (["--set", "replicaCount=0"], "/replicaCount"),
        (["--set", "image.digest=latest"], "/image/digest"),
        (["--set", "webhook.failurePolicy=Maybe"], "/webhook/failurePolicy"),
        (["--set", "trustedKeys.keys.k1=-----BEGIN PRIVATE KEY-----"], "trustedKeys.keys.k1: not a PEM public key"),
        (["--set", "leaderElection.renewDeadlineSeconds=20"], "retryPeriodSeconds < renewDeadlineSeconds <"),
        (["--set", "leaderElection.retryPeriodSeconds=10"], "retryPeriodSeconds < renewDeadlineSeconds <"),
        (["--set", "operator.extraEnv[0].name=MLPLACEMENT_TYPO"], "/operator/extraEnv/0/name"),
        (["--set", "operator.extraEnv[0].name=MLPLACEMENT_NAMESPACE"], "/operator/extraEnv/0/name"),
        (["--set", "operator.extraEnv[0].name=HTTPS_PROXY,operator.extraEnv[0].value=1"], "/operator/extraEnv/0/value"),
        (["--set", "metrics.port=70000"], "/metrics/port"),
        (["--set", "operator.placedEventsPerSecond=-1"], "/operator/placedEventsPerSecond"),
        (["--set", "operator.placedEventsPerSecond=always"], "/operator/placedEventsPerSecond"),
    ],
    ids=[
        "zero workers",
        "unknown log format",
        "two replicas without a Lease would both place",
        "zero replicas",
        "digest that is not a sha256",
        "unknown webhook failure policy",
        "a private key where a public key belongs",
        "a renew deadline past the lease: the operator would refuse to start",
        "renewals no more often than the deadline",
        "an MLPLACEMENT_ variable the operator does not know",
        "an MLPLACEMENT_ variable the chart already sets from its values",
        "an environment value that is not a string",
        "port out of range",
        "a negative Event rate",
        "an Event rate that is neither a number nor inf",
    ],
)
def test_values_schema_rejects_bad_values(flags: list[str], complaint: str) -> None:
    result = helm("template", "mlplacement", CHART, *flags)
    assert result.returncode != 0
    assert complaint in result.stderr


SECRET_PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKEYMATERIALNEVERINLOGS\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize(
    "value",
    [SECRET_PEM, {"pem": SECRET_PEM}, [SECRET_PEM]],
    ids=["a private key PEM", "a PEM inside a map", "a PEM inside a list"],
)
def test_bad_trusted_keys_never_echo_key_material(tmp_path: Path, value: object) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps({"trustedKeys": {"create": True, "keys": {"k1": value}}}), encoding="utf-8")
    result = helm("template", "mlplacement", CHART, "-f", values)
    assert result.returncode != 0
    assert "k1" in result.stderr
    assert "KEYMATERIAL" not in result.stderr


def test_extra_env_allows_exactly_the_settings_the_chart_does_not_set() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    name = schema["properties"]["operator"]["properties"]["extraEnv"]["items"]["properties"]["name"]
    (allowed,) = [rule["enum"] for rule in name["anyOf"] if "enum" in rule]
    known = {ENV_PREFIX + f.upper() for f in OperatorConfig.__dataclass_fields__}
    set_by_chart = set(re.findall(r"MLPLACEMENT_[A-Z_]+", (CHART / "templates" / "deployment.yaml").read_text()))
    assert set(allowed) == known - set_by_chart


def test_every_schema_property_has_a_description() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    missing = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            if not sub.get("description"):
                missing.append(f"{path}{key}")
            walk(sub, f"{path}{key}.")
            walk(sub.get("items") or {}, f"{path}{key}[].")

    walk(schema, "")
    assert missing == []


def test_notes_create_the_namespace_they_apply_into() -> None:
    notes = helm("install", "mlplacement", CHART, "--dry-run=client", "--namespace", NAMESPACE)
    assert notes.returncode == 0, notes.stderr
    text = notes.stdout[notes.stdout.index("NOTES:") :]
    applied = text.index("kubectl apply")
    assert "kubectl create namespace team-search" in text[:applied]


def test_values_yaml_satisfies_its_own_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    for values in (CHART / "values.yaml", ALL_FEATURES):
        jsonschema.validate(_yaml().load(values.read_text(encoding="utf-8")) or {}, schema)


def test_every_value_is_documented() -> None:
    """A leaf value needs a comment above it or above one of its ancestors (maps of data under a documented key)."""
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    ancestors: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\s*[A-Za-z][\w.-]*:", line):
            continue
        indent = len(line) - len(line.lstrip())
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        commented = number > 0 and lines[number - 1].strip().startswith("#")
        following = next((x for x in lines[number + 1 :] if x.strip()), "")
        is_parent = line.rstrip().endswith(":") and len(following) - len(following.lstrip()) > indent
        if not (commented or is_parent or any(documented for _, documented in ancestors)):
            undocumented.append(f"values.yaml:{number + 1}: {line.strip()}")
        ancestors.append((indent, commented))
    assert undocumented == []


def test_rendered_manifests_validate_against_kubernetes_schemas(everything: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in everything:
        if obj["kind"] in FOREIGN_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_SCHEMA_VERSION, strict=True)
        checked += 1
    assert checked >= 15


def test_webhook_is_side_effect_free_and_served_by_the_operators_handlers(everything: list[dict[str, Any]]) -> None:
    from mlplacement.handlers.webhook import WEBHOOK_HANDLER_IDS

    config = one(everything, "ValidatingWebhookConfiguration")
    paths = set()
    for webhook in config["webhooks"]:
        assert webhook["sideEffects"] == "None"
        assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        paths.add(webhook["clientConfig"]["service"]["path"])
    assert paths == {f"/{handler_id}" for handler_id in WEBHOOK_HANDLER_IDS}


def test_webhook_certificate_is_the_operators_and_rendering_is_stable(everything: list[dict[str, Any]]) -> None:
    """No Helm `lookup`, no generated certificate: two renders are identical (Argo CD sees no drift); the
    operator is told where to keep the certificate, and RBAC lets it do exactly that."""
    assert render("-f", ALL_FEATURES) == everything
    config = one(everything, "ValidatingWebhookConfiguration")
    assert all("caBundle" not in webhook["clientConfig"] for webhook in config["webhooks"])
    assert not [s for s in of_kind(everything, "Secret") if s["type"] == "kubernetes.io/tls"]
    (container,) = one(everything, "Deployment")["spec"]["template"]["spec"]["containers"]
    environ = {e["name"]: e.get("value") for e in container["env"]}
    assert environ["MLPLACEMENT_WEBHOOK_CERT_SECRET"] == "mlplacement-webhook-tls"
    assert environ["MLPLACEMENT_WEBHOOK_CONFIGURATION"] == config["metadata"]["name"]
    assert "MLPLACEMENT_WEBHOOK_CERT_DIR" not in environ
    cluster_rules = _rules(everything, "ClusterRole")
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingwebhookconfigurations"],
        "resourceNames": [config["metadata"]["name"]],
        "verbs": ["get", "patch"],
    } in cluster_rules
    role_rules = _rules(everything, "Role")
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["mlplacement-webhook-tls"],
        "verbs": ["get", "patch"],
    } in role_rules


def test_two_replicas_one_leader_and_rollouts_that_keep_one_ready(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    environ = {e["name"]: e.get("value") for e in container["env"]}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert environ["MLPLACEMENT_LEADER_ELECTION"] == "true"
    assert environ["MLPLACEMENT_LEASE_NAME"] == "mlplacement-leader"
    pod_name = next(e for e in container["env"] if e["name"] == "MLPLACEMENT_POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The kubelet must not kill the leader before it has finished its round and handed over the Lease.
    assert pod["terminationGracePeriodSeconds"] > int(environ["MLPLACEMENT_SHUTDOWN_GRACE_SECONDS"])
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    budget = one(default, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    lease_rules = [r for r in _rules(default, "Role") if r["apiGroups"] == ["coordination.k8s.io"]]
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["mlplacement-leader"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]


def test_one_replica_without_election_is_recreated_and_has_no_budget() -> None:
    objects = render("--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not of_kind(objects, "PodDisruptionBudget")  # a budget over one pod would block every drain
    assert not [r for r in _rules(objects, "Role") if r["apiGroups"] == ["coordination.k8s.io"]]


def test_webhook_with_cert_manager_uses_a_certificate_and_ca_injection() -> None:
    objects = render("--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true")
    assert {o["kind"] for o in objects} >= {"Certificate", "Issuer"}
    assert not [s for s in of_kind(objects, "Secret") if s["type"] == "kubernetes.io/tls"]
    config = one(objects, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].startswith(f"{NAMESPACE}/")


def test_trusted_keys_secret_holds_one_pem_per_key(everything: list[dict[str, Any]]) -> None:
    secret = next(s for s in of_kind(everything, "Secret") if s["metadata"]["name"] == "mlplacement-trusted-keys")
    assert list(secret["stringData"]) == ["platform-2026.pem"]
    assert secret["stringData"]["platform-2026.pem"].startswith("-----BEGIN PUBLIC KEY-----\n")


def test_signals_configmap_is_what_the_operator_parses(everything: list[dict[str, Any]]) -> None:
    from mlplacement.api.signals import parse_signals

    configmap = next(c for c in of_kind(everything, "ConfigMap") if c["metadata"]["name"] == "mlplacement-signals")
    signals = parse_signals(configmap["data"]["signals.yaml"])
    assert signals.ttl_seconds == 900


def test_dashboard_only_queries_metrics_the_operator_exports(everything: list[dict[str, Any]]) -> None:
    configmap = next(c for c in of_kind(everything, "ConfigMap") if c["metadata"]["name"].endswith("dashboard"))
    dashboard = json.loads(configmap["data"]["mlplacement.json"])
    exported = set()
    for family in PrometheusMetrics().registry.collect():
        exported |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmlplacement_\w+", target["expr"])
    }
    assert queried
    assert queried <= exported, queried - exported


def test_helm_template_output_is_plain_yaml_helm_would_apply(default: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    _yaml().dump_all(default, text)
    assert "{{" not in text.getvalue()
