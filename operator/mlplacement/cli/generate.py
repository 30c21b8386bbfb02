"""`mlplacement crds` (the CRD YAML and the chart's CRD templates, generated from the API models) and `completion`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlplacement.adapters.files import (
    dump_plain,
)
from mlplacement.api.crds import render_all
from mlplacement.cli import GENERATED_NOTE, REPO_CHART_CRDS_DIR, REPO_CRDS_DIR, cli


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path, allow_dash=True),
    default=REPO_CRDS_DIR,
    show_default=True,
    help="Directory to write one YAML file per CRD into; '-' prints them all to standard output.",
)
@click.option(
    "--chart-out",
    "chart_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the Helm chart's CRD templates (gated by crds.enabled, crds.keep); '' skips them. "
    "Default: the checkout's chart when --out is the checkout's crds/, else none.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file differs from the models.")
def crds(out_dir: Path, chart_dir: Path | None, check: bool) -> None:
    """Render the CustomResourceDefinitions from the API models (plain YAML and Helm chart templates)."""
    rendered = render_all()
    if str(out_dir) == "-":
        if check:
            raise click.UsageError("--check compares files: give --out DIR, not '-'")
        click.echo(f"# {GENERATED_NOTE}\n" + dump_plain(list(rendered.values())), nl=False)
        return
    if out_dir == REPO_CRDS_DIR and not REPO_CRDS_DIR.parent.joinpath("pyproject.toml").is_file():
        raise click.UsageError("not running from a source checkout: pass --out DIR (and --chart-out DIR or '')")
    if chart_dir is None:  # another --out must never rewrite the checkout's chart behind the user's back
        chart_dir = REPO_CHART_CRDS_DIR if out_dir.resolve() == REPO_CRDS_DIR.resolve() else Path("")
    files: dict[Path, str] = {}
    for name, crd in rendered.items():
        files[out_dir / name] = f"# {GENERATED_NOTE}\n" + dump_plain([crd])
        if str(chart_dir) not in ("", "."):
            files[chart_dir / name] = chart_crd_template(crd)
    drift = []
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                drift.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    if drift:
        raise click.ClickException(f"CRDs differ from the models, run `mlplacement crds`: {', '.join(drift)}")


def chart_crd_template(crd: dict[str, Any]) -> str:
    """One CRD as a Helm template: same spec as crds/, chart labels, and the keep policy when asked for."""
    body = dump_plain([{"spec": crd["spec"]}])
    if "{{" in body:  # a description would be read as a template directive
        raise click.ClickException(f"{crd['metadata']['name']}: '{{{{' in the schema cannot go into a Helm template")
    return (
        f"{{{{/* {GENERATED_NOTE} */}}}}\n"
        "{{- if .Values.crds.enabled }}\n"
        f"apiVersion: {crd['apiVersion']}\n"
        f"kind: {crd['kind']}\n"
        "metadata:\n"
        f"  name: {crd['metadata']['name']}\n"
        "  labels:\n"
        '    {{- include "mlplacement.labels" . | nindent 4 }}\n'
        "  {{- if .Values.crds.keep }}\n"
        "  annotations:\n"
        "    # Uninstalling the chart must not delete every MLWorkload in the cluster with the CRD.\n"
        "    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n"
        f"{body}"
        "{{- end }}\n"
    )


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: `source <(mlplacement completion bash)`, or save it where your shell
    loads completions from (zsh: a file `_mlplacement` on $fpath; fish: ~/.config/fish/completions/)."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    if completer is None:  # click knows these three; a newer click could drop one
        raise click.ClickException(f"no completion for {shell} in this click version")
    click.echo(completer(cli, {}, "mlplacement", "_MLPLACEMENT_COMPLETE").source())
