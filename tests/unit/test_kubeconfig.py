"""The EdgeCluster kubeconfig allow-list: each refused shape is a named case; no error ever echoes a secret."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from mlplacement.core.kubeconfig import MAX_KUBECONFIG_BYTES, KubeconfigError, parse_kubeconfig

TOKEN = "eyJhbGciOiJSUzI1NiJ9.edge-secret-token"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN EC PRIVATE KEY-----\nsecret-key-material\n-----END EC PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "edge",
        "clusters": [
            {
                "name": "fra",
                "cluster": {"server": "https://edge-fra.example:6443", "certificate-authority-data": b64(PEM)},
            }
        ],
        "users": [{"name": "op", "user": user or {"token": TOKEN}}],
        "contexts": [{"name": "edge", "context": {"cluster": "fra", "user": "op"}}],
    }


def dump(doc: Any) -> str:
    import io

    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    return out.getvalue()


def edit(change: Callable[[dict[str, Any]], None], **user: Any) -> str:
    doc = kubeconfig(**user)
    change(doc)
    return dump(doc)


def cluster(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["clusters"][0]["cluster"]


def user(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["users"][0]["user"]


def test_inline_token_is_accepted() -> None:
    creds = parse_kubeconfig(dump(kubeconfig()))
    assert creds.server == "https://edge-fra.example:6443"
    assert creds.ca_data == PEM
    assert creds.token == TOKEN
    assert creds.auth == "token"
    assert TOKEN not in repr(creds)


def test_inline_client_certificate_is_accepted() -> None:
    creds = parse_kubeconfig(dump(kubeconfig(**{"client-certificate-data": b64(PEM), "client-key-data": b64(KEY_PEM)})))
    assert creds.client_key_data == KEY_PEM
    assert creds.auth == "client-certificate"
    assert "secret-key-material" not in repr(creds)


REFUSED = [
    (
        "exec plugin runs a program",
        edit(lambda d: user(d).update(exec={"command": "aws", "args": ["eks", "get-token"]})),
        "exec",
    ),
    (
        "auth-provider runs a plugin",
        edit(lambda d: user(d).update({"auth-provider": {"name": "gcp"}})),
        "auth-provider",
    ),
    (
        "token file reads the operator's disk",
        edit(lambda d: user(d).update(tokenFile="/var/run/secrets/token")),
        "tokenFile",
    ),
    (
        "client certificate by path",
        edit(lambda d: None, **{"client-certificate": "/etc/c.crt", "client-key-data": b64(KEY_PEM)}),
        "client-certificate",
    ),
    (
        "client key by path",
        edit(lambda d: None, **{"client-certificate-data": b64(PEM), "client-key": "/etc/c.key"}),
        "client-key",
    ),
    (
        "CA by path",
        edit(lambda d: cluster(d).update({"certificate-authority": "/etc/ca.crt"})),
        "certificate-authority",
    ),
    (
        "TLS verification off",
        edit(lambda d: cluster(d).update({"insecure-skip-tls-verify": True})),
        "insecure-skip-tls-verify",
    ),
    ("proxy", edit(lambda d: cluster(d).update({"proxy-url": "http://proxy:3128"})), "proxy-url"),
    ("basic auth", edit(lambda d: None, username="admin", password="hunter2"), "basic authentication"),
    ("impersonation", edit(lambda d: user(d).update({"as": "system:admin"})), "impersonation"),
    ("plain http server", edit(lambda d: cluster(d).update(server="http://edge:8080")), "https://"),
    (
        "no CA data",
        edit(lambda d: cluster(d).pop("certificate-authority-data")),
        "certificate-authority-data is required",
    ),
    (
        "CA data that is not base64",
        edit(lambda d: cluster(d).update({"certificate-authority-data": "not base64!"})),
        "not valid base64",
    ),
    ("CA data that is not PEM", edit(lambda d: cluster(d).update({"certificate-authority-data": b64(b"junk")})), "PEM"),
    ("token and certificate both", edit(lambda d: user(d).update({"client-certificate-data": b64(PEM)})), "not both"),
    ("no credentials at all", edit(lambda d: user(d).clear()), "needs token"),
    ("unknown user field", edit(lambda d: user(d).update(extensions=[])), "extensions is not allowed"),
    ("current context missing", edit(lambda d: d.update({"current-context": "elsewhere"})), "current-context"),
    (
        "context names an unknown cluster",
        edit(lambda d: d["contexts"][0]["context"].update(cluster="x")),
        "cluster that is not",
    ),
    ("not YAML", "clusters: [unclosed", "not valid YAML"),
    ("not a mapping", "- just\n- a list\n", "must be a mapping"),
    ("oversized", "#" * (MAX_KUBECONFIG_BYTES + 1), "bytes; at most"),
    (
        "a list where the current-context name belongs",
        edit(lambda d: d.update({"current-context": ["edge"]})),
        "current-context",
    ),
    (
        "a list where a context names its cluster",
        edit(lambda d: d["contexts"][0]["context"].update(cluster=["fra"])),
        "names a cluster",
    ),
    (
        "lists nested 600 deep",
        "clusters: " + "[" * 600 + "]" * 600 + "\n",
        "kubeconfig",
    ),
    (
        "credentials in the server URL",
        edit(lambda d: cluster(d).update(server="https://admin:hunter2@edge-fra.example:6443")),
        "must not carry credentials",
    ),
    (
        "a token with CR/LF in it",
        edit(lambda d: None, token="abc\r\nX-Injected: 1"),
        "one line",
    ),
    (
        "a token pasted as a bare YAML key",
        edit(lambda d: user(d).update({TOKEN: None})),
        "a field of user",
    ),
]


@pytest.mark.parametrize(("text", "complaint"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_shapes(text: str, complaint: str) -> None:
    with pytest.raises(KubeconfigError) as raised:
        parse_kubeconfig(text)
    assert complaint in str(raised.value)
    for secret in (TOKEN, "hunter2", "secret-key-material", b64(KEY_PEM), "/var/run/secrets/token"):
        assert secret not in str(raised.value)


# Bearer tokens are b64token (RFC 6750): letters, digits and -._~+/ with trailing =.
B64TOKEN = st.from_regex(r"[A-Za-z0-9\-._~+/]{8,200}=*", fullmatch=True)


@settings(deadline=None)
@given(token=B64TOKEN)
def test_no_error_echoes_the_token(token: str) -> None:
    doc = kubeconfig(token=token)
    broken = copy.deepcopy(doc)
    cluster(broken)["server"] = "http://plain"
    with pytest.raises(KubeconfigError) as raised:
        parse_kubeconfig(dump(broken))
    assert token not in str(raised.value)
    assert parse_kubeconfig(dump(doc)).token == token.strip()


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)
FIELDS = ("current-context", "clusters", "users", "contexts", "server", "token", "cluster", "user", "name")


@given(
    shape=st.dictionaries(st.sampled_from(FIELDS), YAML_VALUES, max_size=5),
    where=st.sampled_from(["top", "cluster", "user", "context"]),
)
@settings(max_examples=300)
def test_any_shape_is_credentials_or_a_kubeconfig_error(shape: dict[str, Any], where: str) -> None:
    doc = kubeconfig()
    section = {
        "top": doc,
        "cluster": cluster(doc),
        "user": user(doc),
        "context": doc["contexts"][0]["context"],
    }[where]
    section.update(shape)
    problem = ""
    try:
        parse_kubeconfig(dump(doc))
    except KubeconfigError as exc:  # anything else fails the test
        problem = str(exc)
    assert TOKEN not in problem
