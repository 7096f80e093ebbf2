"""Commands of this component: ``sara fhir serve`` and ``sara fhir load``.

Module level stays light: the server, SQLite and HTTP code are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sara.common.errors import UserError

app = typer.Typer(
    help="Embedded FHIR R4 server (SQLite) and loading into any FHIR server.",
    no_args_is_help=True,
)

_SCALES = ("small", "full")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.", envvar="SARA_FHIR_HOST")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(help="Port (0: any free port).", envvar="SARA_FHIR_PORT")
    ] = 8080,
    db: Annotated[
        Path, typer.Option(help="SQLite file (created if missing).", envvar="SARA_FHIR_DB")
    ] = Path("sara-fhir.db"),
    synthetic: Annotated[
        int | None, typer.Option(help="Seed N synthetic patients if the database is empty.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic EHR.")] = 1,
    scale: Annotated[str, typer.Option(help="Synthetic EHR scale: small or full.")] = "small",
    load: Annotated[
        list[Path] | None,
        typer.Option(help="Load a .ndjson, .ndjson.gz or Bundle .json file (repeatable)."),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            help="Largest accepted request body (413 above).", envvar="SARA_FHIR_MAX_BODY_BYTES"
        ),
    ] = 10 * 1024 * 1024,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Serve FHIR R4 at http://HOST:PORT/fhir/ from a SQLite file."""
    from sara.common import logs

    if scale not in _SCALES:
        raise UserError(f"--scale must be one of {', '.join(_SCALES)}, not {scale!r}")
    if synthetic is not None and synthetic <= 0:
        raise UserError("--synthetic must be a positive number of patients")
    if max_body_bytes <= 0:
        raise UserError("--max-body-bytes must be positive")
    for path in load or []:
        if not path.is_file():
            raise UserError(f"--load {path}: no such file")
    if not db.parent.exists():
        raise UserError(f"--db {db}: directory {db.parent} does not exist")
    try:
        logs.configure(log_level)
    except ValueError as exc:
        raise UserError(str(exc)) from None

    from sara.common.http import ensure_port_free
    from sara.fhir import server
    from sara.fhir.settings import ServerSettings
    from sara.fhir.store import Store

    settings = ServerSettings(host=host, port=port, db=db, max_body_bytes=max_body_bytes)
    ensure_port_free(host, port)  # before seeding, which can take a minute
    store = Store(db)
    try:
        server.prepare(store, loads=load or [], synthetic=synthetic, seed=seed, scale=scale)
    finally:
        store.close()
    server.serve(settings)


@app.command("load")
def load_command(
    files: Annotated[list[Path], typer.Argument(help=".ndjson, .ndjson.gz or Bundle .json files.")],
    url: Annotated[str, typer.Option(help="FHIR base URL, e.g. http://127.0.0.1:8080/fhir")],
    batch_size: Annotated[int, typer.Option(help="Resources per transaction Bundle.")] = 500,
    state: Annotated[
        Path | None,
        typer.Option(help="Progress file for resuming (default: .sara-fhir-load.json here)."),
    ] = None,
    retries: Annotated[int, typer.Option(help="Retries per batch on 5xx/connection errors.")] = 6,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "WARNING",
) -> None:
    """Post resources to ANY FHIR server as transaction Bundles of PUTs (idempotent, resumable)."""
    from sara.common import logs

    if batch_size <= 0:
        raise UserError("--batch-size must be positive")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--url must be an http(s) URL, not {url!r}")
    for path in files:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    logs.configure(log_level)

    from sara.fhir import loader

    summary = loader.load_files(
        url,
        files,
        batch_size=batch_size,
        state_path=state or Path(".sara-fhir-load.json"),
        retries=retries,
        show_progress=True,
    )
    typer.echo(
        f"loaded {summary.resources} resources in {summary.batches} batches "
        f"({summary.skipped_batches} already done)"
    )
