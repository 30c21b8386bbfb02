"""A local stand-in for the Databricks Jobs API endpoints mlplacement uses (tests only).

It honours what the operator relies on: runs/submit de-duplicates by idempotency_token, runs/get advances a run
through its life cycle, runs/cancel, runs/list, and an authenticated identity call for health probes. Faults
are injected per request: 429 with Retry-After, 503, slow responses, dropped connections, and a response held
back after the submit was accepted (the client times out, the run exists). The real databricks-sdk talks to it
over real HTTP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

API_VERSIONS = ("2.1", "2.2")  # the SDK's choice of version is its own; both route here


@dataclass
class Fault:
    """What happens to the next request whose path ends with ``path`` (any path when empty)."""

    kind: str  # "429", "503", "slow", "drop", "accept-then-stall"
    path: str = ""
    seconds: float = 0.0  # Retry-After for 429/503, delay for slow and accept-then-stall


@dataclass
class Run:
    run_id: int
    run_name: str
    body: dict[str, Any]
    outcome: str  # result_state once terminated
    gets: int = 0
    life_cycle: str = "PENDING"
    result: str | None = None
    message: str = ""
    start_time: int = 0  # epoch ms, as the Jobs API reports it: when it started running (0: not yet)
    end_time: int = 0  # epoch ms: when it terminated (0: not yet)


@dataclass
class JobsState:
    token: str
    steps_per_state: int = 1  # runs/get calls a run spends in PENDING and in RUNNING
    runs: dict[int, Run] = field(default_factory=dict)
    by_token: dict[str, int] = field(default_factory=dict)
    outcomes: deque[str] = field(default_factory=deque)  # result_state of the next submitted runs
    faults: deque[Fault] = field(default_factory=deque)
    submits: int = 0  # submit requests that reached the handler
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in list(self.faults):
                if not fault.path or path.endswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def delete_run(self, run_id: int) -> None:
        """Someone removed the run in the Databricks UI."""
        with self.lock:
            self.runs.pop(run_id, None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        # The client may have given up (a timeout under test); the run it asked for exists all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _error(self, code: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._reply(code, {"error_code": error_code, "message": message}, headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        state.requests.append(f"{method} {url.path}")
        fault = state.take_fault(url.path)
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.close()  # no response at all: the client sees the connection go away
                return
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            if fault.kind == "429":
                self._error(429, "TOO_MANY_REQUESTS", "rate limited", {"Retry-After": str(int(fault.seconds))})
                return
            if fault.kind == "503":
                self._error(503, "TEMPORARILY_UNAVAILABLE", "try later", {"Retry-After": str(int(fault.seconds))})
                return
        if url.path.startswith("/.well-known/"):
            self._error(404, "NOT_FOUND", "no host metadata here")  # the SDK then uses the explicit config
            return
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            self._error(401, "UNAUTHENTICATED", "invalid access token")
            return
        route = url.path
        for version in API_VERSIONS:
            route = route.replace(f"/api/{version}/", "/api/X/")
        handler = {
            ("POST", "/api/X/jobs/runs/submit"): self._submit,
            ("GET", "/api/X/jobs/runs/get"): self._get,
            ("POST", "/api/X/jobs/runs/cancel"): self._cancel,
            ("GET", "/api/X/jobs/runs/list"): self._list,
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
        }.get((method, route))
        if handler is None:
            self._error(404, "ENDPOINT_NOT_FOUND", f"no {method} {url.path}")
            return
        payload = handler(body, query)
        if fault is not None and fault.kind == "accept-then-stall":
            time.sleep(fault.seconds)  # the work is done; the client gives up before it hears so
        if payload is not None:
            self._reply(200, payload)

    def _submit(self, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any]:
        state = self.server.state
        with state.lock:
            state.submits += 1
            token = body.get("idempotency_token")
            if token and token in state.by_token and state.by_token[token] in state.runs:
                return {"run_id": state.by_token[token]}
            run_id = next(state.ids)
            outcome = state.outcomes.popleft() if state.outcomes else "SUCCESS"
            state.runs[run_id] = Run(run_id, body.get("run_name", ""), body, outcome)
            if token:
                state.by_token[token] = run_id
        return {"run_id": run_id}

    def _run_json(self, run: Run) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": run.life_cycle, "state_message": run.message}
        if run.result:
            state["result_state"] = run.result
        return {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "state": state,
            "run_page_url": f"http://{self.headers.get('Host')}/#job/runs/{run.run_id}",
            "tasks": run.body.get("tasks", []),
        }

    def _get(self, _: dict[str, Any], query: dict[str, str]) -> dict[str, Any] | None:
        state = self.server.state
        with state.lock:
            run = state.runs.get(int(query.get("run_id", "0")))
            if run is None:
                self._error(400, "INVALID_PARAMETER_VALUE", f"Run {query.get('run_id')} does not exist.")
                return None
            run.gets += 1
            if run.life_cycle == "PENDING" and run.gets > state.steps_per_state:
                run.life_cycle = "RUNNING"
                run.start_time = int(time.time() * 1000)
            elif run.life_cycle == "RUNNING" and run.gets > 2 * state.steps_per_state:
                run.life_cycle, run.result = "TERMINATED", run.outcome
                run.end_time = max(int(time.time() * 1000), run.start_time + 1)  # it ran, however briefly
                run.message = "" if run.outcome == "SUCCESS" else f"Task main failed: {run.outcome.lower()}"
            elif run.life_cycle == "TERMINATING":
                run.life_cycle, run.result, run.message = "TERMINATED", "CANCELED", "Run cancelled."
            return self._run_json(run)

    def _cancel(self, body: dict[str, Any], _: dict[str, str]) -> dict[str, Any] | None:
        state = self.server.state
        with state.lock:
            run = state.runs.get(int(body.get("run_id", 0)))
            if run is None:
                self._error(400, "INVALID_PARAMETER_VALUE", f"Run {body.get('run_id')} does not exist.")
                return None
            if run.life_cycle != "TERMINATED":
                run.life_cycle = "TERMINATING"
        return {}

    def _list(self, _: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        state = self.server.state
        with state.lock:
            runs = [self._run_json(r) for r in state.runs.values()]
        active = query.get("active_only") == "true"
        return {"runs": [r for r in runs if not active or r["state"]["life_cycle_state"] != "TERMINATED"]}

    def _me(self, _: dict[str, Any], __: dict[str, str]) -> dict[str, Any]:
        return {"id": "1", "userName": "mlplacement-operator@example.com"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: JobsState


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1 and its key: the stand-in speaks HTTPS like a real workspace with
    it, and the control plane's controller-manager signs with one."""
    key = ec.generate_private_key(ec.SECP256R1())
    # A distinct name per certificate: with several stand-ins in one CA bundle, a shared name would make
    # OpenSSL pick the wrong issuer and fail verification.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"databricks-stand-in-{uuid.uuid4().hex[:12]}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "standin.crt", directory / "standin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class JobsStandIn:
    """Start with ``with JobsStandIn(token, tls_dir=...) as jobs:``; ``jobs.host`` is the workspace URL.

    With ``tls_dir`` it serves HTTPS with a self-signed certificate (``jobs.ca_bundle``), as real workspaces
    do; clients trust it through REQUESTS_CA_BUNDLE.
    """

    def __init__(self, token: str = "dapi-standin-secret-token", tls_dir: Path | None = None) -> None:
        self.state = JobsState(token=token)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self.ca_bundle: Path | None = None
        if tls_dir is not None:
            self.ca_bundle, key_path = self_signed_certificate(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_bundle, key_path)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        scheme = "https" if self.ca_bundle else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> JobsStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
