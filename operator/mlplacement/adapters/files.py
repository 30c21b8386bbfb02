"""YAML files on disk: multi-document, round-trip (comments and key order survive), clear errors."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarint import OctalInt, ScalarInt

from mlplacement.api.errors import describe_validation_error
from mlplacement.api.fleet import Fleet


class ManifestFileError(Exception):
    """A file that cannot be read or is not YAML; the message names the file."""


def _round_trip_yaml(sequence_offset: int = 0) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long strings such as signatures
    yaml.indent(mapping=2, sequence=sequence_offset + 2, offset=sequence_offset)
    return yaml


_SEQUENCE_UNDER_KEY = re.compile(r"^( *)[^\s#-][^\n]*:[ \t]*\n( *)- ", re.MULTILINE)


def _sequence_offset(text: str) -> int:
    """How far this file indents block sequences under their key (0 or 2), so a rewrite keeps its style."""
    match = _SEQUENCE_UNDER_KEY.search(text)
    return max(0, len(match.group(2)) - len(match.group(1))) if match else 0


@dataclass
class ManifestFile:
    """The documents of one YAML file, kept as round-trip nodes so a rewrite changes only what we touch."""

    path: Path
    documents: list[Any]
    explicit_start: bool
    sequence_offset: int = 0

    def dump(self) -> str:
        yaml = _round_trip_yaml(self.sequence_offset)
        yaml.explicit_start = self.explicit_start
        out = io.StringIO()
        yaml.dump_all(self.documents, out)
        return out.getvalue()


STDIN = Path("-")
_stdin_text: list[str] = []  # standard input, read once: several options may name it


def is_stdin(path: Path) -> bool:
    return str(path) == "-"


def read_text(path: Path) -> str:
    """A file's text, or standard input's for ``-`` (as kubectl -f -); errors name the file in one line."""
    try:
        if is_stdin(path):
            if not _stdin_text:
                _stdin_text.append(sys.stdin.buffer.read().decode("utf-8"))
            return _stdin_text[0]
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestFileError(f"{_name(path)}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestFileError(f"{_name(path)}: not a UTF-8 text file") from exc


def _name(path: Path) -> str:
    return "<stdin>" if is_stdin(path) else str(path)


def read_manifests(path: Path) -> ManifestFile:
    text = read_text(path)
    try:
        documents = [doc for doc in _round_trip_yaml().load_all(text) if doc is not None]
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestFileError(f"{_name(path)}: not valid YAML{where}: {problem}") from exc
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise ManifestFileError(f"{_name(path)}: document {index + 1} is not a mapping (a Kubernetes object)")
    return ManifestFile(
        path=path,
        documents=documents,
        explicit_start=text.lstrip().startswith("---"),
        sequence_offset=_sequence_offset(text),
    )


def iter_objects(paths: list[Path]) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Every object of every file (directories are walked for *.yaml/*.yml), as plain dicts; the items of a
    `kind: List` (what `kubectl get -o yaml` prints) one by one."""
    for path in paths:
        if not is_stdin(path) and not path.exists():
            raise ManifestFileError(f"{path}: no such file or directory")
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
        for file in files:
            for index, doc in enumerate(read_manifests(file).documents):
                plain = to_plain(doc)
                if plain.get("kind") == "List":  # `kubectl get ... -o yaml`: its items are the objects
                    for item in plain.get("items") or []:
                        if isinstance(item, dict):
                            yield file, index, item
                    continue
                yield file, index, plain


# Plain scalars YAML 1.1 (what kubectl, Helm and Argo CD parse with) reads as booleans; YAML 1.2 as strings.
_YAML11_BOOLEANS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]
)
# JSON numbers the apiserver turns from a whole float into an integer outside the safe range of signed bytes.
_SAFE_INTEGER = 2**53


def yaml11_ambiguities(node: Any, path: str) -> list[str]:
    """Plain scalars under ``node`` that this tool (YAML 1.2) and the cluster's tools (YAML 1.1) read apart.

    Signing them would sign a value the cluster never holds, and the operator would refuse the object as
    tampered: each is named with its field path and what YAML 1.1 makes of it.
    """
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if type(key) is str and key in _YAML11_BOOLEANS:
                found.append(f"{where}: the key {key!r} reads as a boolean under YAML 1.1; quote it")
            found += yaml11_ambiguities(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += yaml11_ambiguities(value, f"{path}[{index}]")
    elif type(node) is str and node in _YAML11_BOOLEANS:
        found.append(f"{path}: {node!r} reads as a boolean under YAML 1.1; quote it")
    elif isinstance(node, OctalInt):
        found.append(f"{path}: 0o-octal {int(node)} reads as a string under YAML 1.1; write it in decimal")
    elif isinstance(node, ScalarInt) and int(getattr(node, "_width", 0) or 0) > len(str(abs(int(node)))):
        written = str(int(node)).zfill(int(getattr(node, "_width", 0)))
        found.append(f"{path}: {written} reads as octal under YAML 1.1; drop the leading zero or quote it")
    elif isinstance(node, date):
        found.append(
            f"{path}: the unquoted timestamp {node.isoformat()} may be rewritten by kubectl, Helm or Argo CD "
            "(a YAML 1.1 timestamp); quote it"
        )
    elif isinstance(node, float) and node.is_integer() and abs(node) >= _SAFE_INTEGER:
        found.append(f"{path}: {node!r} arrives as an integer beyond 2^53 once applied; use a string")
    return found


def referenced_elsewhere(root: Any, target: Any) -> bool:
    """Whether ``target`` (a mapping or list) appears more than once under ``root``: a YAML alias shares it."""
    seen = 0
    stack = [root]
    visited: set[int] = set()
    while stack:
        node = stack.pop()
        if node is target:
            seen += 1
            if seen > 1:
                return True
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def to_plain(node: Any) -> Any:
    """Round-trip nodes -> plain dicts, lists and scalars (what the apiserver would hold)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def dump_plain(documents: list[Any]) -> str:
    """Plain data -> block-style YAML, for generated files."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 120
    out = io.StringIO()
    yaml.explicit_start = len(documents) > 1
    yaml.dump_all(documents, out)
    return out.getvalue()


def read_key_directory(path: Path) -> dict[str, bytes]:
    """The ``<keyId>.pem`` / ``.notBefore`` / ``.notAfter`` files of a trusted-keys directory."""
    if not path.is_dir():
        raise ManifestFileError(f"{path}: not a directory of trusted keys")
    # Only trust material is read: a private key kept beside its public half is never loaded.
    suffixes = (".pem", ".notBefore", ".notAfter")
    return {
        entry.name: entry.read_bytes()
        for entry in sorted(path.iterdir())
        if entry.is_file() and entry.name.endswith(suffixes)
    }


def write_private_file(path: Path, content: bytes) -> None:
    """Create ``path`` readable by its owner only, refusing to overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def load_fleet(path: Path | None) -> Fleet:
    """A fleet file, or the embedded sample fleet when ``path`` is None; errors name the field path."""
    if path is None:
        text = resources.files("mlplacement").joinpath("data/sample-fleet.yaml").read_text(encoding="utf-8")
        documents = [to_plain(doc) for doc in _round_trip_yaml().load_all(text) if doc is not None]
        source = "embedded sample fleet"
    else:
        documents = [to_plain(doc) for doc in read_manifests(path).documents]
        source = _name(path)
    if len(documents) != 1:
        raise ManifestFileError(f"{source}: a fleet file holds exactly one document, found {len(documents)}")
    try:
        return Fleet.model_validate(documents[0])
    except ValidationError as exc:
        raise ManifestFileError(f"{source}: invalid fleet: {describe_validation_error(exc)}") from None
