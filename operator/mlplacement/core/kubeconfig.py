"""Allow-list parsing of an EdgeCluster's kubeconfig, before any Kubernetes client sees it.

A kubeconfig can make a client run programs (`exec`, `auth-provider`), read files on the operator's disk
(`certificate-authority`, `client-key`, `tokenFile`), skip TLS verification or route through a proxy. Only
inline material is accepted: a server URL over https, inline CA data, and either an inline bearer token or an
inline client certificate and key. Errors name the offending field, never a value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

MAX_KUBECONFIG_BYTES = 64 * 1024
CLUSTER_FIELDS = frozenset({"server", "certificate-authority-data", "tls-server-name"})
USER_FIELDS = frozenset({"token", "client-certificate-data", "client-key-data"})
# Named in the error message so an operator knows exactly what to remove; each is a way out of the allow-list.
REFUSED_FIELDS = {
    "exec": "runs a program",
    "auth-provider": "runs a credential plugin",
    "tokenFile": "reads a file",
    "client-certificate": "reads a file",
    "client-key": "reads a file",
    "certificate-authority": "reads a file",
    "insecure-skip-tls-verify": "disables TLS verification",
    "proxy-url": "routes traffic through a proxy",
    "username": "basic authentication",
    "password": "basic authentication",
    "as": "impersonation",
    "as-groups": "impersonation",
    "as-uid": "impersonation",
    "as-user-extra": "impersonation",
}


class KubeconfigError(ValueError):
    """A kubeconfig outside the allow-list; the message names fields, never their values."""


@dataclass(frozen=True)
class RemoteCredentials:
    """What a client for one edge cluster may use. ``repr`` shows no secret."""

    server: str
    ca_data: bytes = field(repr=False)
    token: str | None = field(default=None, repr=False)
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    tls_server_name: str | None = None

    @property
    def auth(self) -> str:
        return "token" if self.token else "client-certificate"


_FIELD_NAME = re.compile(r"[a-z][a-z-]{0,39}")


def _named(entries: Any, kind: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(entries, list):
        raise KubeconfigError(f"{kind} must be a list")
    out: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(entries):
        inner = kind[:-1]
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise KubeconfigError(f"{kind}[{index}] needs a name")
        if not isinstance(entry.get(inner), Mapping):
            raise KubeconfigError(f"{kind}[{index}].{inner} must be a mapping")
        out[entry["name"]] = entry[inner]
    return out


def _check_fields(section: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in section:
        if key in REFUSED_FIELDS:
            raise KubeconfigError(f"{where}.{key} is not allowed ({REFUSED_FIELDS[key]})")
        if key not in allowed:
            # Named only if it looks like a field: a token pasted as a bare YAML key must not be echoed.
            shown = f"{where}.{key}" if isinstance(key, str) and _FIELD_NAME.fullmatch(key) else f"a field of {where}"
            raise KubeconfigError(f"{shown} is not allowed (allowed: {', '.join(sorted(allowed))})")


def _decode(section: Mapping[str, Any], key: str, where: str) -> bytes:
    value = section.get(key)
    if not isinstance(value, str) or not value.strip():
        raise KubeconfigError(f"{where}.{key} is required")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where}.{key} is not valid base64") from None
    if b"-----BEGIN " not in decoded:
        raise KubeconfigError(f"{where}.{key} does not hold PEM data")
    return decoded


def parse_kubeconfig(raw: bytes | str) -> RemoteCredentials:
    """The credentials of the kubeconfig's current context, if every field is on the allow-list.

    Any input gives credentials or a KubeconfigError naming the field, never another exception and never a
    credential in the message."""
    try:
        return _parse(raw)
    except KubeconfigError:
        raise
    except (TypeError, ValueError, AttributeError, RecursionError):  # shapes no kubeconfig has
        raise KubeconfigError("kubeconfig has a value of the wrong type where a name or a section belongs") from None


def _parse(raw: bytes | str) -> RemoteCredentials:
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_KUBECONFIG_BYTES:
        raise KubeconfigError(f"kubeconfig is {len(data)} bytes; at most {MAX_KUBECONFIG_BYTES} are accepted")
    try:
        doc = YAML(typ="safe", pure=True).load(data.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError):
        raise KubeconfigError("kubeconfig is not valid YAML") from None
    except RecursionError:
        raise KubeconfigError("kubeconfig is nested too deep") from None
    if not isinstance(doc, Mapping):
        raise KubeconfigError("kubeconfig must be a mapping")
    clusters = _named(doc.get("clusters"), "clusters")
    users = _named(doc.get("users"), "users")
    contexts = _named(doc.get("contexts"), "contexts")
    current = doc.get("current-context")
    if current is None and len(contexts) == 1:
        current = next(iter(contexts))
    if not isinstance(current, str) or current not in contexts:
        raise KubeconfigError("current-context must name one of contexts")
    context = contexts[current]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or cluster_name not in clusters:
        raise KubeconfigError(f"context {current!r} names a cluster that is not in clusters")
    if not isinstance(user_name, str) or user_name not in users:
        raise KubeconfigError(f"context {current!r} names a user that is not in users")
    cluster, user = clusters[cluster_name], users[user_name]
    _check_fields(cluster, CLUSTER_FIELDS, "cluster")
    _check_fields(user, USER_FIELDS, "user")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise KubeconfigError("cluster.server must be an https:// URL")
    if "@" in urlsplit(server).netloc:  # user:password@host smuggles basic auth past the allow-list
        raise KubeconfigError("cluster.server must not carry credentials (user@ or user:password@)")
    if any(ord(c) < 33 or ord(c) == 127 for c in server):
        raise KubeconfigError("cluster.server must not contain spaces or control characters")
    ca_data = _decode(cluster, "certificate-authority-data", "cluster")
    tls_server_name = cluster.get("tls-server-name")
    token = user.get("token")
    has_cert = "client-certificate-data" in user or "client-key-data" in user
    if token is not None and has_cert:
        raise KubeconfigError("user must have either token or client-certificate-data/client-key-data, not both")
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise KubeconfigError("user.token must be a non-empty string")
        if any(ord(c) < 32 or ord(c) == 127 for c in token.strip()):  # CR/LF would split the HTTP header
            raise KubeconfigError("user.token must be one line without control characters")
        return RemoteCredentials(server=server, ca_data=ca_data, token=token.strip(), tls_server_name=tls_server_name)
    if not has_cert:
        raise KubeconfigError("user needs token, or client-certificate-data and client-key-data")
    return RemoteCredentials(
        server=server,
        ca_data=ca_data,
        client_cert_data=_decode(user, "client-certificate-data", "user"),
        client_key_data=_decode(user, "client-key-data", "user"),
        tls_server_name=tls_server_name,
    )
