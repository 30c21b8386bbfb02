"""Operator configuration: environment variables (or flags), parsed once into a frozen object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from mlplacement.api.constants import POOL_LABEL_KEYS

ENV_PREFIX = "MLPLACEMENT_"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class OperatorConfig:
    """Every setting of `mlplacement run`, with its environment variable and default in the README."""

    namespace: str = "mlplacement-system"  # MLPLACEMENT_NAMESPACE: where keys, signals and secrets live
    trusted_keys_secret: str = "mlplacement-trusted-keys"  # MLPLACEMENT_TRUSTED_KEYS_SECRET
    trusted_keys_configmap: str = ""  # MLPLACEMENT_TRUSTED_KEYS_CONFIGMAP: alternative to the Secret
    signals_configmap: str = "mlplacement-signals"  # MLPLACEMENT_SIGNALS_CONFIGMAP
    pool_label_keys: tuple[str, ...] = field(default=POOL_LABEL_KEYS)  # MLPLACEMENT_POOL_LABEL_KEYS (comma list)
    metrics_port: int = 9090  # MLPLACEMENT_METRICS_PORT (0 disables)
    health_port: int = 8080  # MLPLACEMENT_HEALTH_PORT: /healthz liveness
    placement_interval_seconds: float = 2.0  # MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS: batch loop period
    write_concurrency: int = 8  # MLPLACEMENT_WRITE_CONCURRENCY: parallel status/child writes per round
    # MLPLACEMENT_MAX_BATCH: at most this many workloads decided in one round (highest priority, then oldest,
    # first; the rest in the next round, at once): bounds a round's memory and how long new arrivals wait on it
    max_batch: int = 1000
    # MLPLACEMENT_PLACED_EVENTS_PER_SECOND: routine placements (first placement, no move) get an Event each up to
    # this rate (burst: ten seconds' worth); beyond it a summary Event per policy every 10 s. `inf`: always one each
    placed_events_per_second: float = 10.0
    worker_limit: int = 200  # MLPLACEMENT_WORKER_LIMIT: kopf per-object workers per resource
    # MLPLACEMENT_IDLE_TIMEOUT_SECONDS: kopf worker idle timeout; a worker holds its slot this long after an event,
    # so worker_limit / idle_timeout bounds how many objects a second a watch hands over (a new leader's listing)
    idle_timeout_seconds: float = 0.005
    reload_seconds: float = 15.0  # MLPLACEMENT_RELOAD_SECONDS: how often trusted keys and signals are re-read
    retry_backoff_seconds: float = 30.0  # MLPLACEMENT_RETRY_BACKOFF_SECONDS: re-decide waiting workloads
    pool_grace_seconds: float = 300.0  # MLPLACEMENT_POOL_GRACE_SECONDS: a pool with no ready node fails over after
    # MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS: a child whose pods the scheduler cannot place is placed again after
    unschedulable_grace_seconds: float = 120.0
    cluster_name: str = "home"  # MLPLACEMENT_CLUSTER_NAME: this cluster's name on the children it puts on edges
    edge_cleanup_grace_seconds: float = 600.0  # MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS: unknown edge copies wait
    databricks_poll_seconds: float = 15.0  # MLPLACEMENT_DATABRICKS_POLL_SECONDS: run status poll period
    webhook_port: int = 0  # MLPLACEMENT_WEBHOOK_PORT: validating admission webhook (0 = off)
    webhook_cert_dir: str = ""  # MLPLACEMENT_WEBHOOK_CERT_DIR: holds tls.crt and tls.key for the webhook
    # MLPLACEMENT_WEBHOOK_CERT_SECRET: a Secret the operator keeps a CA and serving certificate in (instead of
    # files); the leader issues and rotates it, every replica serves from it
    webhook_cert_secret: str = ""
    webhook_service: str = ""  # MLPLACEMENT_WEBHOOK_SERVICE: the Service in front of the webhook (its DNS names)
    # MLPLACEMENT_WEBHOOK_CONFIGURATION: the ValidatingWebhookConfiguration whose caBundle the leader keeps current
    webhook_configuration: str = ""
    log_format: str = "json"  # MLPLACEMENT_LOG_FORMAT: json or plain
    leader_election: bool = True  # MLPLACEMENT_LEADER_ELECTION: only the Lease holder watches and writes
    lease_name: str = "mlplacement-leader"  # MLPLACEMENT_LEASE_NAME: the Lease in MLPLACEMENT_NAMESPACE
    lease_duration_seconds: float = 15.0  # MLPLACEMENT_LEASE_DURATION_SECONDS: a standby takes over after this
    renew_deadline_seconds: float = 10.0  # MLPLACEMENT_RENEW_DEADLINE_SECONDS: the leader stops after this
    retry_period_seconds: float = 2.0  # MLPLACEMENT_RETRY_PERIOD_SECONDS: between lease reads and renewals
    pod_name: str = ""  # MLPLACEMENT_POD_NAME: the Lease holder's name (the hostname when empty)
    # MLPLACEMENT_SHUTDOWN_GRACE_SECONDS: on SIGTERM, how long the current round may finish its writes
    shutdown_grace_seconds: float = 20.0
    # MLPLACEMENT_GATE_POLL_SECONDS: how often pipelines re-read the objects their readiness gates name
    gate_poll_seconds: float = 15.0
    # MLPLACEMENT_SERVICE_ACCOUNT: the operator's own ServiceAccount; the webhook lets only it write pipeline stages
    service_account: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read MLPLACEMENT_* variables; unknown ones are an error (a typo must not go unnoticed)."""
        environ = os.environ if environ is None else environ
        known = {f"{ENV_PREFIX}{f.name.upper()}": f for f in fields(cls)}
        unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, object] = {}
        for variable, spec in known.items():
            if variable not in environ:
                continue
            raw = environ[variable].strip()
            kind = type(getattr(cls(), spec.name))
            try:
                if kind is bool:
                    values[spec.name] = _boolean(raw)
                elif kind is tuple:
                    values[spec.name] = tuple(part.strip() for part in raw.split(",") if part.strip())
                elif kind is int:
                    values[spec.name] = int(raw)
                elif kind is float:
                    values[spec.name] = float(raw)
                else:
                    values[spec.name] = raw
            except ValueError:
                raise ConfigError(f"{variable}={raw!r} is not a valid {kind.__name__}") from None
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        if not self.namespace:
            raise ConfigError("MLPLACEMENT_NAMESPACE must not be empty")
        if self.write_concurrency < 1 or self.worker_limit < 1:
            raise ConfigError("MLPLACEMENT_WRITE_CONCURRENCY and MLPLACEMENT_WORKER_LIMIT must be >= 1")
        if self.max_batch < 1:
            raise ConfigError("MLPLACEMENT_MAX_BATCH must be >= 1")
        if not self.placed_events_per_second >= 0:  # NaN too
            raise ConfigError("MLPLACEMENT_PLACED_EVENTS_PER_SECOND must be >= 0 (inf: an Event for every placement)")
        if self.placement_interval_seconds <= 0:
            raise ConfigError("MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS must be > 0")
        if self.log_format not in ("json", "plain"):
            raise ConfigError("MLPLACEMENT_LOG_FORMAT must be json or plain")
        if self.pool_grace_seconds < 0:
            raise ConfigError("MLPLACEMENT_POOL_GRACE_SECONDS must be >= 0")
        if self.unschedulable_grace_seconds < 0:
            raise ConfigError("MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS must be >= 0")
        if self.edge_cleanup_grace_seconds < 0:
            raise ConfigError("MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS must be >= 0")
        if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", self.cluster_name):
            raise ConfigError("MLPLACEMENT_CLUSTER_NAME must be a label value (<= 63 letters, digits, -_.)")
        if self.webhook_port and not (self.webhook_cert_dir or self.webhook_cert_secret):
            raise ConfigError(
                "MLPLACEMENT_WEBHOOK_PORT needs MLPLACEMENT_WEBHOOK_CERT_DIR (tls.crt, tls.key) "
                "or MLPLACEMENT_WEBHOOK_CERT_SECRET (certificates the operator issues)"
            )
        if self.webhook_cert_secret and not (self.webhook_service and self.webhook_configuration):
            raise ConfigError(
                "MLPLACEMENT_WEBHOOK_CERT_SECRET needs MLPLACEMENT_WEBHOOK_SERVICE (the certificate's DNS names) "
                "and MLPLACEMENT_WEBHOOK_CONFIGURATION (where its CA goes)"
            )
        if not 0 < self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ConfigError(
                "leader election needs 0 < MLPLACEMENT_RETRY_PERIOD_SECONDS < MLPLACEMENT_RENEW_DEADLINE_SECONDS "
                "< MLPLACEMENT_LEASE_DURATION_SECONDS (the leader must stop before a standby may take over)"
            )
        if self.shutdown_grace_seconds < 0:
            raise ConfigError("MLPLACEMENT_SHUTDOWN_GRACE_SECONDS must be >= 0")
        if self.gate_poll_seconds <= 0:
            raise ConfigError("MLPLACEMENT_GATE_POLL_SECONDS must be > 0")
        if not self.pool_label_keys:
            raise ConfigError("MLPLACEMENT_POOL_LABEL_KEYS must name at least one label")


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(raw)
