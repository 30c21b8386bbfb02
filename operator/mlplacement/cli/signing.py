"""`mlplacement keygen`, `sign` and `verify`: signed intent before it reaches git."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from ruamel.yaml.comments import CommentedMap

from mlplacement.adapters.files import (
    is_stdin,
    read_key_directory,
    read_manifests,
    referenced_elsewhere,
    to_plain,
    write_private_file,
    yaml11_ambiguities,
)
from mlplacement.api.constants import ANNOTATION_SIGNATURE_EXPIRES, SIGNED_KINDS, Reason
from mlplacement.cli import cli
from mlplacement.cli.common import emit, filename_option, inputs, output_option, plural
from mlplacement.core import keyring as keyring_core
from mlplacement.core.reconcile import describe, invalid_spec
from mlplacement.core.signing import SigningError, parse_expires, sign, verify

_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@cli.command()
@click.option("--key-id", required=True, help="Name of the key; becomes <key-id>.key and <key-id>.pem.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--algorithm", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519", show_default=True)
def keygen(key_id: str, out_dir: Path, algorithm: str) -> None:
    """Create a signing key pair: a private key (mode 0600) and the public PEM to trust."""
    if not keyring_core.KEY_ID_RE.match(key_id):
        raise click.BadParameter(f"must match {keyring_core.KEY_ID_RE.pattern}", param_hint="--key-id")
    private_path, public_path = out_dir / f"{key_id}.key", out_dir / f"{key_id}.pem"
    for path in (private_path, public_path):  # a trusted .pem replaced would untrust every signature made with it
        if path.exists():
            raise click.ClickException(f"{path} exists; refusing to overwrite a key")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        private_key = keyring_core.generate_key(algorithm)
        write_private_file(private_path, keyring_core.private_pem(private_key))
        public_path.write_bytes(keyring_core.public_pem(private_key))
    except FileExistsError:
        raise click.ClickException(f"{private_path} exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: cannot write the key pair: {exc.strerror}") from None
    click.echo(f"wrote {private_path} (keep secret) and {public_path} (add to the trusted keys)")


def _parse_expiry(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    match = _DURATION_RE.match(text)
    try:
        expires = (
            now + timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))}) if match else parse_expires(text)
        )
    except (ValueError, OverflowError):
        raise click.BadParameter(
            "use a duration (30d, 12h, 90m) or an RFC 3339 UTC time, before the year 10000", param_hint="--expires"
        ) from None
    if expires <= now:  # a signature no admission would ever accept
        raise click.BadParameter(f"{text} is not in the future", param_hint="--expires")
    return expires


@cli.command("sign")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@filename_option("Manifest file to sign")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key PEM (from `mlplacement keygen`).",
)
@click.option("--key-id", help="Key id to record; default: the key file's name without extension.")
@click.option("--expires", help="Signature lifetime: a duration (30d, 12h) or an RFC 3339 UTC time.")
@click.option("--in-place", is_flag=True, help="Rewrite the files (all or none); default: print the signed YAML.")
def sign_command(
    files: tuple[Path, ...],
    filenames: tuple[Path, ...],
    key_path: Path,
    key_id: str | None,
    expires: str | None,
    in_place: bool,
) -> None:
    """Sign every MLWorkload, MLPipeline and PlacementPolicy in FILES (or -f FILE, '-' for standard input); other
    documents pass through untouched. Each is judged by the operator's own model first: what it would refuse is
    never signed."""
    paths = inputs(files, filenames)
    if in_place and any(is_stdin(path) for path in paths):
        raise click.UsageError("--in-place cannot rewrite standard input")
    key_id = key_id or key_path.stem
    if not keyring_core.KEY_ID_RE.match(key_id):
        hint = "--key-id" if key_id != key_path.stem else "--key-id (the key file's name is not a valid key id)"
        raise click.BadParameter(f"{key_id!r} must match {keyring_core.KEY_ID_RE.pattern}", param_hint=hint)
    try:
        private_key = keyring_core.load_private_key(key_path.read_bytes(), str(key_path))
    except OSError as exc:
        raise click.ClickException(f"{key_path}: cannot read: {exc.strerror}") from None
    except keyring_core.KeyringError as exc:
        raise click.ClickException(str(exc)) from None
    expiry = _parse_expiry(expires, datetime.now(UTC))
    manifests = [read_manifests(path) for path in paths]  # read all first: fail before writing anything
    signable = 0
    for manifest in manifests:  # and judge all first: a file is never rewritten before another fails
        for document in manifest.documents:
            plain = to_plain(document)
            if plain.get("kind") not in SIGNED_KINDS:
                continue
            signable += 1
            ambiguous = yaml11_ambiguities(document.get("spec"), "spec")
            if ambiguous:  # what kubectl would apply is not what would be signed
                raise click.ClickException(f"{manifest.path}: {describe(plain)}: " + "; ".join(ambiguous))
            problem = invalid_spec(plain)
            if problem is not None:  # the operator would refuse it: a signature would only hide that
                raise click.ClickException(f"{manifest.path}: {Reason.INVALID_SPEC.value}: {problem}")
    if not signable:
        raise click.ClickException(f"nothing to sign: {_no_signed_kind(paths)}")
    for position, manifest in enumerate(manifests):
        for document in manifest.documents:
            plain = to_plain(document)
            if plain.get("kind") not in SIGNED_KINDS:
                continue
            try:
                annotations = sign(plain, private_key, key_id, expiry)
            except SigningError as exc:
                raise click.ClickException(f"{manifest.path}: {describe(plain)}: {exc}") from None
            metadata = document.setdefault("metadata", CommentedMap())
            existing = metadata.get("annotations")
            if existing is None or referenced_elsewhere(document, existing):
                # A fresh map: writing into one a YAML alias shares would write the signature into spec too.
                existing = CommentedMap(existing or {})
                metadata["annotations"] = existing
            existing.pop(ANNOTATION_SIGNATURE_EXPIRES, None)  # a re-sign without --expires must not keep it
            existing.update(annotations)
            click.echo(f"signed {describe(plain)} with {key_id!r}", err=True)
        if in_place:
            manifest.path.write_text(manifest.dump(), encoding="utf-8")
        else:
            text = manifest.dump()
            if position:  # one stream: files after the first start a document of their own (else kubectl merges them)
                click.echo("---")
            click.echo(text if text.endswith("\n") or not text else text + "\n", nl=False)


def _no_signed_kind(files: Sequence[Path]) -> str:
    return f"no {', '.join(sorted(SIGNED_KINDS))} in {', '.join('<stdin>' if is_stdin(f) else str(f) for f in files)}"


@cli.command("verify")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@filename_option("Manifest file to verify")
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of trusted <keyId>.pem files (and optional .notBefore/.notAfter), as the trusted-keys Secret.",
)
@click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="One trusted public key PEM (repeatable); its key id is the file's name without .pem.",
)
@output_option("table", "json", "yaml")
def verify_command(
    files: tuple[Path, ...],
    filenames: tuple[Path, ...],
    keys_dir: Path | None,
    key_files: tuple[Path, ...],
    output: str,
) -> None:
    """Verify the signatures of every MLWorkload, MLPipeline and PlacementPolicy in FILES (or -f FILE, '-' for
    standard input) as the operator would; exit 1 if any fails."""
    paths = inputs(files, filenames)
    if keys_dir is None and not key_files:
        raise click.UsageError("give the trusted keys: --keys DIR or --key PUBLIC.pem")
    trusted: dict[str, bytes] = read_key_directory(keys_dir) if keys_dir is not None else {}
    for key_file in key_files:
        try:
            trusted[key_file.stem + keyring_core.PEM_SUFFIX] = key_file.read_bytes()
        except OSError as exc:
            raise click.ClickException(f"{key_file}: cannot read: {exc.strerror}") from None
    keyring = keyring_core.parse_keyring(trusted)
    for problem in keyring.problems.values():
        click.echo(f"warning: {problem}", err=True)
    now = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    for manifest in (read_manifests(path) for path in paths):
        for index, document in enumerate(manifest.documents):
            plain = to_plain(document)
            meta = plain.get("metadata") or {}
            result = {
                "file": "<stdin>" if is_stdin(manifest.path) else str(manifest.path),
                "document": index + 1,
                "kind": plain.get("kind"),
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
            }
            if plain.get("kind") not in SIGNED_KINDS:
                results.append(result | {"verified": None, "reason": "Skipped", "message": "not a signed kind"})
                continue
            refused = invalid_spec(plain)
            if refused is not None:  # a valid signature over what the operator refuses verifies nothing
                results.append(result | {"verified": False, "reason": Reason.INVALID_SPEC.value, "message": refused})
                continue
            verdict = verify(plain, keyring, now)
            results.append(
                result | {"verified": verdict.ok, "reason": verdict.reason.value, "message": verdict.message}
            )
    judged = [r for r in results if r["verified"] is not None]
    failed = [r for r in judged if not r["verified"]]
    if not emit({"results": results, "checked": len(judged), "failed": len(failed)}, output):
        for r in results:
            where = f"{r['file']}#{r['document']} {describe({'kind': r['kind'], 'metadata': r})}"
            click.echo(
                f"{where}: skipped ({r['message']})"
                if r["verified"] is None
                else f"{where}: {r['reason']}: {r['message']}"
            )
    if not judged:
        raise click.ClickException(f"nothing to verify: {_no_signed_kind(paths)}")
    if failed:
        unsigned = sum(r["reason"] == "SignatureMissing" for r in failed)
        detail = f" ({unsigned} not signed at all)" if unsigned else ""
        raise click.ClickException(f"{len(failed)} of {plural(len(judged), 'document')} did not verify{detail}")
