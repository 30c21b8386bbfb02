"""`mlplacement run`: the operator itself."""

from __future__ import annotations

import click

from mlplacement.cli import cli


@cli.command()
@click.option("--namespace", envvar="MLPLACEMENT_NAMESPACE", help="Operator namespace (keys, signals, secrets).")
@click.option(
    "--log-format",
    type=click.Choice(["json", "plain"]),
    envvar="MLPLACEMENT_LOG_FORMAT",
    default="json",
    show_default=True,
)
def run(namespace: str | None, log_format: str) -> None:
    """Run the operator. Settings: MLPLACEMENT_* environment variables (README, "Settings").

    With leader election (the default) any number of replicas may run: one leads, the others stand by."""
    import os

    import kopf

    from mlplacement.config import ConfigError, OperatorConfig

    if namespace:
        os.environ["MLPLACEMENT_NAMESPACE"] = namespace
    os.environ["MLPLACEMENT_LOG_FORMAT"] = log_format
    try:
        config = OperatorConfig.from_env()  # fail fast, before any client is built
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    import logging

    import mlplacement.handlers.operator  # noqa: F401  (registers the kopf handlers)
    from mlplacement.adapters.kube import NoClusterCredentialsError, load_client
    from mlplacement.handlers.runner import main as run_main

    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN)
    # Libraries' warnings (urllib3's among them) go through logging, so they are JSON lines like the rest.
    logging.captureWarnings(True)
    # kopf says "Handler ... succeeded." at INFO for every event of every object: at thousands of objects that is
    # most of the log and none of its news. Its warnings and errors stay.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        load_client()  # fail in one line before anything starts: no kopf, no threads, no port opened
    except NoClusterCredentialsError as exc:
        raise click.ClickException(str(exc)) from None
    run_main(config)
