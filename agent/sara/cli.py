"""The ``sara`` console script: the one module that composes every component's commands.

Each component owns a ``cli`` module with a Typer app whose module level imports nothing heavy
(frameworks are imported inside the commands), so ``sara --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sara.agent import cli as agent_cli
from sara.bench import cli as bench_cli
from sara.common.errors import UserError
from sara.ehr import cli as ehr_cli
from sara.fhir import cli as fhir_cli
from sara.modelserver import cli as model_cli
from sara.operator import cli as operator_cli
from sara.train import cli as train_cli

app = typer.Typer(
    name="sara",
    help="Sara: clinical workflow agents over FHIR R4, from laptop to Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(fhir_cli.app, name="fhir")
app.add_typer(ehr_cli.app, name="ehr")
app.add_typer(model_cli.app, name="model")
app.add_typer(agent_cli.app, name="agent")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(operator_cli.app, name="operator")
app.add_typer(train_cli.app, name="train")
app.command("run")(agent_cli.run)


@app.command("up")
def up(
    host: str = typer.Option("127.0.0.1", help="Address every service listens on."),
    fhir_port: int = typer.Option(8080, help="Port of the embedded FHIR server."),
    model_port: int = typer.Option(8001, help="Port of the reference model server."),
    agent_port: int = typer.Option(8000, help="Port of the agent API."),
    db: Path = typer.Option(Path("var/sara-fhir.sqlite"), help="SQLite file of the FHIR server."),
    runs: Path = typer.Option(Path("var/runs.db"), help="SQLite run store of the agent."),
    write_mode: str = typer.Option(
        "approve",
        help="What the agent does with an order: approve (held for sign-off), execute, "
        "dry-run, deny, acknowledge.",
    ),
    patients: int = typer.Option(100, min=1, help="Synthetic patients to chart (first start)."),
    seed: int = typer.Option(1, help="Seed of the synthetic EHR."),
    latency: float = typer.Option(0.0, min=0.0, help="Extra seconds per model call."),
    api_key: str | None = typer.Option(
        None, envvar="SARA_UP_API_KEY", help="Agent API key (default: a fresh random one)."
    ),
    ready_timeout: float = typer.Option(300.0, help="Seconds to wait for all services."),
    log_dir: str = typer.Option(
        "var/logs",
        help="Write each service's log to DIR/NAME.log; '-' keeps them on this terminal.",
    ),
) -> None:
    """Start FHIR server, reference model server and agent on this machine; Ctrl-C stops all."""
    from sara import stack

    cfg = stack.StackConfig(
        host=host,
        fhir_port=fhir_port,
        model_port=model_port,
        agent_port=agent_port,
        db=db,
        runs=runs,
        write_mode=write_mode,
        patients=patients,
        seed=seed,
        latency=latency,
        api_key=api_key,
        ready_timeout=ready_timeout,
        log_dir=None if log_dir == "-" else Path(log_dir),
    )
    raise typer.Exit(stack.up(cfg, echo=typer.echo))


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit status 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a file or port the user named cannot be used
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
