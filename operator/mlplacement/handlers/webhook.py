"""Optional validating admission webhook: moves a refusal from the operator's status to `kubectl apply`.

Served by every replica, the standby too (a verdict reads only the object and the cached trusted keys), so
one pod's restart or a rollout never leaves the API server without an answer. The chart renders the
ValidatingWebhookConfiguration; the operator only serves it (and, with operator-kept certificates, keeps
its caBundle current).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from mlplacement.controller.webhook_tls import ServingCertificate
from mlplacement.core.keyring import Keyring
from mlplacement.core.reconcile import admission_problem

log = logging.getLogger("mlplacement.webhook")

# The chart's webhook paths are /<id>.
WEBHOOK_HANDLER_IDS = ("validate-mlworkloads", "validate-placementpolicies", "validate-mlpipelines")
# The API server sends at most its request size limit (3 MiB) plus the old object; anything larger is not a
# review from it.
MAX_REVIEW_BYTES = 8 * 1024 * 1024


def review_response(review: Any, keyring: Keyring, now: datetime, operator_user: str = "") -> dict[str, Any]:
    """The AdmissionReview answer to ``review``. Never raises: what cannot be judged is refused with a reason.

    ``operator_user`` is the operator's own user name (system:serviceaccount:<namespace>:<name>): the only one
    allowed to write pipeline stages."""
    request = review.get("request") if isinstance(review, Mapping) else None
    uid = request.get("uid") if isinstance(request, Mapping) else None
    if not isinstance(uid, str) or not isinstance(request, Mapping):
        return _answer("", False, "not an AdmissionReview request", 400)
    obj, old = request.get("object"), request.get("oldObject")
    if request.get("operation") == "DELETE" or not isinstance(obj, Mapping):
        return _answer(uid, True)
    try:
        user_info = request.get("userInfo")
        user = str(user_info.get("username") or "") if isinstance(user_info, Mapping) else ""
        problem = admission_problem(
            obj, old if isinstance(old, Mapping) else None, keyring, now, user=user, operator_user=operator_user
        )
    except Exception as exc:  # a verdict must come back for any input; the operator's own gate still holds
        log.exception("admission check failed")
        problem = f"the object could not be checked ({type(exc).__name__})"
    return _answer(uid, problem is None, problem or "", 403)


def policy_change(review: Any) -> bool:
    """A PlacementPolicy created, or updated in what it says (its spec): what a what-if is worth running for."""
    request = review.get("request") if isinstance(review, Mapping) else None
    if not isinstance(request, Mapping) or request.get("operation") not in ("CREATE", "UPDATE"):
        return False
    obj, old = request.get("object"), request.get("oldObject")
    if not isinstance(obj, Mapping) or obj.get("kind") != "PlacementPolicy":
        return False
    return not isinstance(old, Mapping) or old.get("spec") != obj.get("spec")


def _answer(uid: str, allowed: bool, message: str = "", code: int = 200) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "message": message}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class WebhookServer:
    """HTTPS on ``port`` with the (swappable) serving certificate; one route per WEBHOOK_HANDLER_IDS."""

    def __init__(
        self,
        port: int,
        serving: ServingCertificate,
        keyring: Callable[[], Keyring],
        operator_user: str = "",
        impact: Callable[[Mapping[str, Any]], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.operator_user = operator_user
        self.impact = impact
        self.port = port
        self.serving = serving
        self.keyring = keyring
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        for handler_id in WEBHOOK_HANDLER_IDS:
            app.router.add_post(f"/{handler_id}", self._review)
        return app

    async def _review(self, request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
        except ValueError:
            review = None
        answer = review_response(review, self.keyring(), datetime.now(UTC), self.operator_user)
        if self.impact is not None and answer["response"]["allowed"] and policy_change(review):
            # Admitted on its signature; the what-if of what it would do is told, never a reason to refuse.
            warnings = await self.impact(review["request"]["object"])
            if warnings:
                answer["response"]["warnings"] = warnings
        return web.json_response(answer)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "0.0.0.0", self.port, ssl_context=self.serving.context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
