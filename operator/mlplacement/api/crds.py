"""Render CustomResourceDefinitions from the pydantic models.

The apiserver wants a *structural* OpenAPI v3 schema: every node typed, no ``$ref``, no ``anyOf`` of
types, no ``uniqueItems``, no ``default`` under a signed spec. Pydantic emits JSON Schema 2020-12, so this
module inlines references, folds ``Optional[X]`` into ``X`` and rewrites the rest into OpenAPI v3.0 terms.
"""

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mlplacement.api.constants import CATEGORY, GROUP, VERSION, Kind
from mlplacement.api.databricks import DatabricksWorkspaceSpec, DatabricksWorkspaceStatus
from mlplacement.api.edge import EdgeClusterSpec, EdgeClusterStatus
from mlplacement.api.pipeline import MLPipelineSpec, MLPipelineStatus
from mlplacement.api.policy import PlacementPolicySpec, PlacementPolicyStatus
from mlplacement.api.structural import structural_problems
from mlplacement.api.workload import MLWorkloadSpec, MLWorkloadStatus

Schema = dict[str, Any]

# JSON Schema keywords with no place in a structural CRD schema.
_DROPPED_KEYWORDS = frozenset({"title", "default", "examples", "discriminator", "$schema"})


@dataclass(frozen=True)
class KindInfo:
    kind: Kind
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: tuple[dict[str, Any], ...]
    description: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _column(name: str, json_path: str, type_: str = "string", priority: int = 0, description: str = "") -> Schema:
    column: Schema = {"name": name, "type": type_, "jsonPath": json_path}
    if priority:
        column["priority"] = priority
    if description:
        column["description"] = description
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")


def _ready(name: str = "Ready") -> Schema:
    return _column(name, '.status.conditions[?(@.type=="Ready")].status')


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind=Kind.ML_WORKLOAD,
        description="The signed intent of one ML workload; mlplacement decides where it runs and runs it there.",
        plural="mlworkloads",
        singular="mlworkload",
        short_names=("mlw",),
        namespaced=True,
        spec=MLWorkloadSpec,
        status=MLWorkloadStatus,
        printer_columns=(
            _column("Phase", ".status.phase"),
            _column("Target", ".status.placement.target.name"),
            _column("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
            _AGE,
            _column("Type", ".spec.type", priority=1),
            _column("Kind", ".status.placement.target.kind", priority=1),
            _column("Region", ".status.placement.target.region", priority=1),
            _column("Cost/h", ".status.estimatedHourlyCostUSD", "number", priority=1),
            _column("Key", ".status.verified.keyId", priority=1),
            _column("Message", ".status.placement.message", priority=1),
        ),
    ),
    KindInfo(
        kind=Kind.PLACEMENT_POLICY,
        description="Signed platform rules: targets, residency, routing heuristics, spot rules, weights, budget.",
        plural="placementpolicies",
        singular="placementpolicy",
        short_names=("mlpp",),
        namespaced=False,
        spec=PlacementPolicySpec,
        status=PlacementPolicyStatus,
        printer_columns=(
            _column("Verified", '.status.conditions[?(@.type=="Verified")].status'),
            _column("Workloads", ".status.workloads", "integer"),
            _AGE,
            _column("Reason", '.status.conditions[?(@.type=="Verified")].reason', priority=1),
        ),
    ),
    KindInfo(
        kind=Kind.EDGE_CLUSTER,
        description="A remote Kubernetes cluster that can run workloads; status holds its probed health.",
        plural="edgeclusters",
        singular="edgecluster",
        short_names=("edge",),
        namespaced=False,
        spec=EdgeClusterSpec,
        status=EdgeClusterStatus,
        printer_columns=(
            _column("Region", ".spec.region"),
            _ready(),
            _column("GPUs Free", ".status.gpusFree", "integer"),
            _column("RTT ms", ".status.rttMs", "number"),
            _AGE,
            _column("Site", ".spec.site", priority=1),
            _column("Last Probe", ".status.lastProbeTime", "date", priority=1),
            _column("Message", ".status.message", priority=1),
        ),
    ),
    KindInfo(
        kind=Kind.DATABRICKS_WORKSPACE,
        description="A Databricks workspace that runs batch and training workloads as job runs.",
        plural="databricksworkspaces",
        singular="databricksworkspace",
        short_names=("dbxws",),
        namespaced=False,
        spec=DatabricksWorkspaceSpec,
        status=DatabricksWorkspaceStatus,
        printer_columns=(
            _column("Region", ".spec.region"),
            _ready(),
            _column("Active Runs", ".status.activeRuns", "integer"),
            _AGE,
            _column("Host", ".spec.host", priority=1),
            _column("Message", ".status.message", priority=1),
        ),
    ),
    KindInfo(
        kind=Kind.ML_PIPELINE,
        description="A signed DAG of ML stages; each stage is an MLWorkload placed on its own once its inputs are "
        "ready.",
        plural="mlpipelines",
        singular="mlpipeline",
        short_names=("mlpl",),
        namespaced=True,
        spec=MLPipelineSpec,
        status=MLPipelineStatus,
        printer_columns=(
            _column("Stages", ".status.progress", description="Stages succeeded of total."),
            _column("Phase", ".status.phase"),
            _column("Cost/h", ".status.estimatedHourlyCostUSD", "number"),
            _AGE,
            _column("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            _column("Key", ".status.verified.keyId", priority=1),
        ),
    ),
)

KIND_INFO: dict[Kind, KindInfo] = {info.kind: info for info in KINDS}


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target.update(siblings)
        return _resolve(target, defs)
    return {key: _resolve(value, defs) for key, value in node.items() if key != "$defs"}


def _key_rules(names: Schema) -> list[Schema]:
    rules = []
    if "minLength" in names:
        least = names["minLength"]
        rules.append({"rule": f"self.all(k, size(k) >= {least})", "message": f"key length must be >= {least}"})
    if "maxLength" in names:
        limit = names["maxLength"]
        rules.append({"rule": f"self.all(k, size(k) <= {limit})", "message": f"key length must be <= {limit}"})
    # A key "pattern" is left to the models: the apiserver cannot bound a map key's length, so a CEL regex
    # over the keys costs more than its per-rule budget and the CRD would be refused.
    unknown = set(names) - {"minLength", "maxLength", "pattern", "type"}
    if unknown:
        raise ValueError(f"cannot express propertyNames {sorted(unknown)} in a CRD")
    return rules


def _structural(node: Any) -> Any:
    """Rewrite one resolved JSON Schema node (and its children) into structural OpenAPI v3."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    while "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        types = sorted(b.get("type", "") for b in branches)
        if types == ["integer", "string"]:
            # Kubernetes quantities: the one anyOf a structural schema allows, flagged as int-or-string.
            node["x-kubernetes-int-or-string"] = True
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            break
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf {types} in a structural schema")
        merged = dict(branches[0])
        merged.update(node)  # the field's own description wins over the type's
        node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.pop("uniqueItems", False):
        node.setdefault("x-kubernetes-list-type", "set")
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[inclusive] = node[bound]
            node[bound] = True
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node.pop("properties", None)
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "patternProperties" in node:
        # Not allowed in a CRD: the one value schema becomes additionalProperties; the key pattern is checked
        # by the models (a CEL regex over unbounded keys would exceed the cost budget, see _key_rules).
        (value_schema,) = node.pop("patternProperties").values()
        node.setdefault("additionalProperties", value_schema)
    if "propertyNames" in node:
        # Not a field of the CRD schema type (strict decoding rejects it): the same limit as a CEL rule.
        node.setdefault("x-kubernetes-validations", [])
        node["x-kubernetes-validations"] = [*node["x-kubernetes-validations"], *_key_rules(node.pop("propertyNames"))]
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "properties":
            out[key] = {name: _structural(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        else:
            out[key] = value
    if out.get("additionalProperties") is False:
        # Unknown fields are pruned by the apiserver and rejected by the models; `false` is not structural.
        del out["additionalProperties"]
    if "format" in out and out["format"] not in ("date-time", "date", "int32", "int64", "byte"):
        del out["format"]
    return out


def model_schema(model: type[BaseModel]) -> Schema:
    """Structural OpenAPI v3 schema of one model, references inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return dict(_structural(_resolve(raw, defs)))


def _status_schema(info: KindInfo) -> Schema:
    schema = model_schema(info.status)
    # kopf keeps its progress and diff-base in status (never annotations, so Argo CD sees no drift).
    schema.setdefault("properties", {})["kopf"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Operator framework bookkeeping (kopf progress and last-handled configuration).",
    }
    return schema


def render_crd(info: KindInfo) -> Schema:
    """The CustomResourceDefinition of one kind, as a plain dict ready for YAML; raises if not structural."""
    crd = _crd(info)
    problems = structural_problems(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    if problems:
        raise ValueError(f"CRD {info.crd_name} would be refused by the apiserver: " + "; ".join(problems))
    return crd


def _crd(info: KindInfo) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/name": "mlplacement", "app.kubernetes.io/part-of": "mlplacement"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind.value,
                "listKind": f"{info.kind.value}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(info.printer_columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": model_schema(info.spec),
                                "status": _status_schema(info),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_all() -> dict[str, Schema]:
    """File name -> CRD, for every kind."""
    return {f"{GROUP}_{info.plural}.yaml": render_crd(info) for info in KINDS}
