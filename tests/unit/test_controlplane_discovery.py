"""Integration tests and bench/drain.py find control-plane binaries as setup-envtest lays them out."""

import os
from pathlib import Path

from tests.controlplane import find_assets

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def install(store: Path, version: str, binaries: tuple[str, ...] = ("etcd", "kube-apiserver", "kubectl")) -> Path:
    directory = store / f"{version}-linux-{ARCH}"
    directory.mkdir(parents=True)
    for binary in binaries:
        (directory / binary).write_text("#!/bin/sh\n")
    return directory


def test_kubebuilder_assets_wins(tmp_path: Path) -> None:
    explicit = install(tmp_path / "explicit", "1.30.0")
    install(tmp_path / "store", "1.36.0")
    found, origin = find_assets({"KUBEBUILDER_ASSETS": str(explicit)}, (tmp_path / "store",))
    assert found == explicit
    assert "KUBEBUILDER_ASSETS" in origin


def test_without_it_the_newest_version_in_setup_envtests_store(tmp_path: Path) -> None:
    store = tmp_path / "k8s"
    install(store, "1.9.0")
    newest = install(store, "1.36.1")
    install(store, "1.30.10")
    found, origin = find_assets({}, (store,))
    assert found == newest
    assert "setup-envtest" in origin


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    found, why = find_assets({}, (tmp_path / "nowhere",))
    assert found is None
    assert "KUBEBUILDER_ASSETS" in why
    assert str(tmp_path / "nowhere") in why


def test_a_directory_without_the_apiserver_is_named(tmp_path: Path) -> None:
    partial = install(tmp_path, "1.36.0", binaries=("etcd",))
    found, why = find_assets({"KUBEBUILDER_ASSETS": str(partial)}, ())
    assert found is None
    assert why.endswith("lacks kube-apiserver")
