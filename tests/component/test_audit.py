"""The audit trail: one record per action, in a documented stable schema, readable by `mlplacement audit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from mlplacement.api.audit import AuditRecord
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.test_compliance import EU_ONLY, OTHER, World
from tests.component.test_workload_controller import signed
from tests.conftest import REPO, run_cli

SCHEMA = json.loads((REPO / "docs" / "audit-record.schema.json").read_text(encoding="utf-8"))


def audited(*steps: Any) -> tuple[World, list[AuditRecord]]:
    """Run ``steps`` (each made from the world: ``lambda world: world.repolicy(...)``) and keep the records."""
    world = World()
    records: list[AuditRecord] = []
    world.controller.audit = records.append
    world.controller.actor = "mlplacement-7d9f-abcde"
    world.run(*(step(world) for step in steps))
    return world, records


def as_json(record: AuditRecord) -> dict[str, Any]:
    return json.loads(record.model_dump_json(by_alias=True, exclude_none=True))


def test_the_schema_file_is_the_models() -> None:
    result = run_cli("audit", "--schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == SCHEMA, "run: mlplacement audit --schema > docs/audit-record.schema.json"


def test_a_move_and_a_revocation_leave_one_record_each_in_the_documented_schema() -> None:
    def revoke(world: World) -> Any:
        async def step() -> None:
            world.cache.keyring = keyring_core.parse_keyring({"rotated.pem": keyring_core.public_pem(OTHER)})
            world.cache.on_policy(signed(make_policy("default"), OTHER, "rotated"), deleted=False)
            await world.controller.readmit_all()
            await world.round()

        return step

    _, records = audited(lambda world: world.repolicy(**EU_ONLY))
    _, revoked = audited(revoke)
    for record in [*records, *revoked]:
        jsonschema.validate(as_json(record), SCHEMA)
    assert [r.action.value for r in records] == ["Admitted", "Placed", "Moved"]
    moved = records[-1]
    assert moved.actor == "mlplacement-7d9f-abcde"
    assert (moved.previous_target.name, moved.target.name) == ("us-pool", "eu-pool")  # type: ignore[union-attr]
    assert moved.policy is not None
    assert moved.policy.name == "default"
    # Which version of the policy decided: the move was made under the tightened one, not the first.
    assert moved.policy.digest.startswith("sha256:")
    assert moved.policy.digest != records[1].policy.digest  # type: ignore[union-attr]
    assert moved.workload_key_id == "platform"
    assert [c.name for c in moved.candidates] == ["eu-pool"]
    assert [r.action.value for r in revoked] == ["Admitted", "Placed", "Stopped", "Refused"]
    assert revoked[2].reason == "AuthorizationLost"
    assert revoked[3].reason == "UnknownKey"


def test_audit_answers_why_a_workload_is_where_it_is_and_what_moved(tmp_path: Path) -> None:
    _, records = audited(lambda world: world.repolicy(**EU_ONLY))
    log = tmp_path / "operator.log"
    lines = ["[2026-11-22 12:00:00,000] kopf.objects [INFO] not an audit line"]
    lines += [record.model_dump_json(by_alias=True, exclude_none=True) for record in records]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")

    why = run_cli("audit", log, "--workload", "team-a/trainer")
    assert why.returncode == 0, why.stderr
    assert why.stdout.splitlines()[0].startswith("team-a/trainer runs on GPUPool eu-pool (eu-west-1) since ")

    moved = run_cli("audit", log, "--moves", "-o", "json")
    (only,) = json.loads(moved.stdout)
    assert (only["action"], only["previousTarget"]["name"], only["target"]["name"]) == ("Moved", "us-pool", "eu-pool")

    window = run_cli("audit", log, "--since", "2026-11-22T12:00:01", "-o", "json")
    assert json.loads(window.stdout) == []  # every record of the replay is at 12:00:00


def test_the_operator_writes_records_as_bare_json_lines() -> None:
    import io

    from mlplacement.adapters.audit import LogAudit

    stream = io.StringIO()
    sink = LogAudit(stream)
    _, records = audited()
    for record in records:
        sink(record)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(records) == 2
    assert all(AuditRecord.model_validate_json(line) for line in lines)  # nothing else on those lines
