"""The kopf registrations: event handlers only, so kopf's change detection can be switched off."""

from __future__ import annotations

import kopf

import mlplacement.handlers.operator as operator


def test_the_operator_registers_event_handlers_only_so_kopf_need_not_diff_bodies() -> None:
    registry = kopf.get_default_registry()
    assert list(registry._changing.get_all_handlers()) == []  # no on.create/update/delete/resume
    assert list(registry._spawning.get_all_handlers()) == []  # no daemons or timers
    assert len(list(registry._watching.get_all_handlers())) >= 10
    body = kopf.Body({"metadata": {"name": "w"}, "spec": {"x": 1}, "status": {"big": list(range(100))}})
    storage = operator.EventsOnly(field="status.kopf.last-handled-configuration")
    assert storage.build(body=body) is None  # nothing copied on every event
    assert storage.fetch(body=body) is None
