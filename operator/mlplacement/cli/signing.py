"""`mlplacement keygen`, `sign` and `verify`: signed intent before it reaches git."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from ruamel.yaml.comments import CommentedMap

from mlplacement.adapters.files import (
    read_key_directory,
    read_manifests,
    referenced_elsewhere,
    to_plain,
    write_private_file,
    yaml11_ambiguities,
)
from mlplacement.api.constants import ANNOTATION_SIGNATURE_EXPIRES, SIGNED_KINDS, Reason
from mlplacement.cli import cli
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
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key PEM (from `mlplacement keygen`).",
)
@click.option("--key-id", help="Key id to record; default: the key file's name without extension.")
@click.option("--expires", help="Signature lifetime: a duration (30d, 12h) or an RFC 3339 UTC time.")
@click.option("--in-place", is_flag=True, help="Rewrite the files; default: print the signed YAML.")
def sign_command(
    files: tuple[Path, ...], key_path: Path, key_id: str | None, expires: str | None, in_place: bool
) -> None:
    """Sign every MLWorkload and PlacementPolicy in FILES; other documents pass through untouched."""
    try:
        private_key = keyring_core.load_private_key(key_path.read_bytes(), str(key_path))
    except OSError as exc:
        raise click.ClickException(f"{key_path}: cannot read: {exc.strerror}") from None
    except keyring_core.KeyringError as exc:
        raise click.ClickException(str(exc)) from None
    key_id = key_id or key_path.stem
    expiry = _parse_expiry(expires, datetime.now(UTC))
    manifests = [read_manifests(path) for path in files]  # read all first: fail before writing anything
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
        raise click.ClickException(f"nothing to sign: {_no_signed_kind(files)}")
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


def _no_signed_kind(files: tuple[Path, ...]) -> str:
    return f"no {', '.join(sorted(SIGNED_KINDS))} in {', '.join(map(str, files))}"


@cli.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of trusted <keyId>.pem files.",
)
def verify_command(files: tuple[Path, ...], keys_dir: Path) -> None:
    """Verify the signatures of every MLWorkload and PlacementPolicy in FILES; exit 1 if any fails."""
    keyring = keyring_core.parse_keyring(read_key_directory(keys_dir))
    for problem in keyring.problems.values():
        click.echo(f"warning: {problem}", err=True)
    now = datetime.now(UTC)
    failures = checked = 0
    for manifest in (read_manifests(path) for path in files):
        for index, document in enumerate(manifest.documents):
            plain = to_plain(document)
            where = f"{manifest.path}#{index + 1} {describe(plain)}"
            if plain.get("kind") not in SIGNED_KINDS:
                click.echo(f"{where}: skipped (not a signed kind)")
                continue
            checked += 1
            refused = invalid_spec(plain)
            if refused is not None:  # a valid signature over what the operator refuses verifies nothing
                failures += 1
                click.echo(f"{where}: {Reason.INVALID_SPEC.value}: {refused}")
                continue
            verdict = verify(plain, keyring, now)
            failures += not verdict.ok
            click.echo(f"{where}: {verdict.reason.value}: {verdict.message}")
    if not checked:
        raise click.ClickException(f"nothing to verify: {_no_signed_kind(files)}")
    if failures:
        raise click.ClickException(f"{failures} of {checked} signed documents failed verification")
