"""The edge-cluster client cache: private credential files, rebuilt on change, probe errors that leak nothing."""

from __future__ import annotations

import os
import socket
import stat

from mlplacement.adapters.remote import RemoteClusters, build_client, describe
from mlplacement.core.kubeconfig import RemoteCredentials

TOKEN = "edge-token-never-in-errors"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def credentials(server: str = "https://127.0.0.1:6443", token: str = TOKEN) -> RemoteCredentials:
    return RemoteCredentials(server=server, ca_data=PEM, token=token)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_credential_material_lives_in_a_private_directory_with_the_client() -> None:
    built = build_client(RemoteCredentials("https://edge:6443", PEM, None, b"CERT", b"KEY"))
    try:
        assert stat.S_IMODE(os.stat(built.directory).st_mode) == 0o700
        for name in ("ca.crt", "client.crt", "client.key"):
            assert stat.S_IMODE(os.stat(os.path.join(built.directory, name)).st_mode) == 0o600
        configuration = built.api_client.configuration
        assert configuration.verify_ssl is True
        assert configuration.host == "https://edge:6443"
    finally:
        built.close()
    assert not os.path.exists(built.directory)


def test_one_client_per_cluster_rebuilt_when_the_secret_changes() -> None:
    remote = RemoteClusters()
    first = remote._client("edge-a", credentials())
    assert remote._client("edge-a", credentials()) is first
    rotated = remote._client("edge-a", credentials(token="rotated-token"))
    assert rotated is not first
    assert not os.path.exists(first.directory)  # the old token's client and files are gone
    remote.forget("edge-a")
    assert not os.path.exists(rotated.directory)


def test_closing_removes_every_clients_credential_files() -> None:
    remote = RemoteClusters()
    built = [remote._client(name, credentials(token=f"token-{name}")) for name in ("edge-a", "edge-b")]
    remote.close()
    assert not any(os.path.exists(client.directory) for client in built)
    assert remote._client("edge-a", credentials()) is not built[0]  # usable again: a fresh client
    remote.close()


def test_probe_of_an_unreachable_edge_fails_without_leaking_the_token() -> None:
    remote = RemoteClusters()
    result = remote.probe("edge-a", credentials(f"https://127.0.0.1:{closed_port()}"), timeout_seconds=2)
    remote.forget("edge-a")
    assert not result.reachable
    assert not result.placeable
    assert result.error.startswith("MaxRetryError")
    assert TOKEN not in result.error


def test_describe_names_the_failure_not_the_body() -> None:
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=401, reason="Unauthorized")
    exc.body = f'{{"message": "token {TOKEN} rejected"}}'
    assert describe(exc) == "HTTP 401 Unauthorized"
    assert describe(TimeoutError("slow")) == "TimeoutError"
