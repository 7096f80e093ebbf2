"""Commands of the agent component: ``sara agent serve`` and ``sara run``.

Module level stays light (typer only); settings, FastAPI, uvicorn, httpx and rich are imported
inside the commands. Flags override ``SARA_AGENT_*`` environment variables, which override the
defaults of :class:`sara.agent.settings.AgentSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sara.common.errors import UserError

if TYPE_CHECKING:
    from sara.agent.events import Event
    from sara.agent.settings import AgentSettings

app = typer.Typer(help="The agent service: FHIR task loop behind an SSE API.", no_args_is_help=True)


@app.callback()
def agent() -> None:
    """The agent service: FHIR task loop behind an SSE API."""


_FHIR = typer.Option(
    None, "--fhir-url", help="FHIR R4 base URL (the only server the agent contacts)."
)
_MODEL_URL = typer.Option(
    None, "--model-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1."
)
_MODEL = typer.Option(None, "--model", help="Model name sent to the model server.")
_WRITE = typer.Option(
    None, "--write-mode", help="acknowledge | execute | dry-run | deny | approve (sign-off)."
)
_STORE = typer.Option(
    None,
    "--store",
    help="Run store: sqlite:///path/runs.db (default sqlite:///var/runs.db) or "
    "postgresql://user:pass@host:5432/db.",
)
_PARSE = typer.Option(None, "--parse-mode", help="strict | lenient.")
_PROMPT = typer.Option(
    None, "--prompt", help="Prompt profile: medagentbench | sara | compact | sara-leaderboard."
)
_PROTOCOL = typer.Option(
    None,
    "--protocol",
    help="medagentbench | sara | compact | sara-leaderboard (how FHIR answers are worded; "
    "docs/bench.md). With compact, --prompt compact too.",
)
_FUNCS = typer.Option(None, "--functions-file", help="JSON function list shown to the model.")
_ROUNDS = typer.Option(None, "--max-rounds", help="Model rounds per task.")
_LOG = typer.Option(None, "--log-level", help="DEBUG | INFO | WARNING | ERROR.")
_AUDIT = typer.Option(
    None, "--audit-sink", help="stdout, or a file path for JSON-lines audit records."
)


def _settings(**flags: Any) -> AgentSettings:
    """Settings from the environment with the given (non-None) flags on top."""
    from pydantic import ValidationError

    from sara.agent.settings import AgentSettings

    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        return AgentSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"invalid agent settings: {problems}") from exc


@app.command()
def serve(
    fhir_url: str | None = _FHIR,
    model_url: str | None = _MODEL_URL,
    model: str | None = _MODEL,
    host: str | None = typer.Option(None, "--host", help="Interface to listen on."),
    port: int | None = typer.Option(None, "--port", help="Port to listen on (default 8000)."),
    api_keys_file: Path | None = typer.Option(
        None,
        "--api-keys-file",
        help="Bearer API keys: one per line (every role), or YAML [{name, roles, key}].",
    ),
    store: str | None = _STORE,
    no_auth: bool = typer.Option(False, "--no-auth", help="Accept requests without an API key."),
    write_mode: str | None = _WRITE,
    parse_mode: str | None = _PARSE,
    prompt: str | None = _PROMPT,
    protocol: str | None = _PROTOCOL,
    functions_file: Path | None = _FUNCS,
    max_rounds: int | None = _ROUNDS,
    max_concurrent_tasks: int | None = typer.Option(
        None, "--max-concurrent-tasks", help="Tasks run at once; more are answered 429."
    ),
    audit_sink: str | None = _AUDIT,
    log_level: str | None = _LOG,
) -> None:
    """Serve the agent API (POST /v1/tasks, SSE events, /healthz, /readyz, /metrics, /docs)."""
    from sara.common import logs

    settings = _settings(
        fhir_url=fhir_url,
        model_url=model_url,
        model=model,
        host=host,
        port=port,
        api_keys_file=api_keys_file,
        store=store,
        no_auth=True if no_auth else None,
        write_mode=write_mode,
        parse_mode=parse_mode,
        prompt=prompt,
        protocol=protocol,
        functions_file=functions_file,
        max_rounds=max_rounds,
        max_concurrent_tasks=max_concurrent_tasks,
        audit_sink=audit_sink,
        log_level=log_level,
    )
    try:
        logs.configure(settings.log_level)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    from sara.agent.fhir_client import quiet_http_logs

    quiet_http_logs()

    import uvicorn

    from sara.agent.api.app import create_app
    from sara.common.http import BoundedHttpToolsProtocol, ensure_port_free

    ensure_port_free(settings.host, settings.port)
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=int(settings.keep_alive_seconds),
        http=BoundedHttpToolsProtocol,
    )
    uvicorn.Server(config).run()


@app.command()
def migrate(store: str | None = _STORE) -> None:
    """Bring the run store's schema to this version (serve also does it at start-up)."""
    import asyncio

    from sara.agent.store import migrate as migrations

    settings = _settings(store=store)

    async def upgrade() -> tuple[str | None, str]:
        engine = migrations.create_engine(settings.store)
        try:
            before = await migrations.current(engine)
            return before, await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        before, after = asyncio.run(upgrade())
    except OSError as exc:
        raise UserError(f"run store {migrations.safe_url(settings.store)}: {exc}") from exc
    where = migrations.safe_url(settings.store)
    if before == after:
        typer.echo(f"{where}: already at revision {after}")
    else:
        typer.echo(f"{where}: migrated from revision {before or '(empty)'} to {after}")


def run(
    instruction: str = typer.Argument(..., help="The task, in plain language."),
    context: str = typer.Option("", "--context", help="Context given to the model with the task."),
    fhir_url: str | None = _FHIR,
    model_url: str | None = _MODEL_URL,
    model: str | None = _MODEL,
    write_mode: str | None = _WRITE,
    parse_mode: str | None = _PARSE,
    prompt: str | None = _PROMPT,
    protocol: str | None = _PROTOCOL,
    functions_file: Path | None = _FUNCS,
    max_rounds: int | None = _ROUNDS,
    audit_sink: str | None = typer.Option(
        None, "--audit-sink", help="Audit records: a file path, or stdout (default: stderr here)."
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level (logs go to stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the final result as JSON."),
) -> None:
    """Run one task from the terminal, showing each step live."""
    import asyncio

    from sara.common import logs

    if write_mode == "approve":
        raise UserError(
            "write mode approve needs the agent service (sara agent serve): a pending order "
            "waits there for a clinician's signature; use dry-run or deny here"
        )

    settings = _settings(
        fhir_url=fhir_url,
        model_url=model_url,
        model=model,
        write_mode=write_mode,
        parse_mode=parse_mode,
        prompt=prompt,
        protocol=protocol,
        functions_file=functions_file,
        max_rounds=max_rounds,
        audit_sink=audit_sink,
    )
    try:
        logs.configure(log_level)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    from sara.agent.fhir_client import quiet_http_logs

    quiet_http_logs()
    status = asyncio.run(_run_one(settings, instruction, context, as_json, audit_sink is None))
    if status != "completed":
        raise typer.Exit(1)


async def _run_one(
    settings: AgentSettings, instruction: str, context: str, as_json: bool, audit_to_stderr: bool
) -> str:
    import json
    import sys

    from rich.console import Console

    from sara.agent import runtime
    from sara.agent.audit import StreamAuditSink, open_sink
    from sara.agent.events import Finished
    from sara.agent.loop import TaskSpec

    sink = StreamAuditSink(sys.stderr) if audit_to_stderr else open_sink(settings.audit_sink)
    console = Console(highlight=False)
    status = "task error"
    async with runtime.build_loop(settings, audit=sink) as agent:
        async for event in agent.run(TaskSpec(instruction, context)):
            if isinstance(event, Finished):
                status = event.result.status
                if as_json:
                    print(json.dumps(event.result.to_dict(), indent=2))
            if not as_json:
                _show(console, event)
    sink.close()
    return status


def _show(console: Any, event: Event) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from sara.agent import events

    if isinstance(event, events.RoundStarted):
        console.rule(f"round {event.round}")
    elif isinstance(event, events.ModelOutput):
        console.print(
            Panel(
                escape(event.text) or "[dim](empty)[/dim]",
                title=f"model → {event.action}",
                subtitle=f"{event.elapsed_ms:.0f} ms · {event.completion_tokens} tokens",
            )
        )
    elif isinstance(event, events.FhirRequest):
        what = (
            "blocked: " + event.blocked if event.blocked else ("sent" if event.sent else "not sent")
        )
        console.print(f"[cyan]FHIR {event.method} {event.resource_type}[/cyan] ({what})")
    elif isinstance(event, events.FhirResponse):
        entries = "" if event.entry_count is None else f", {event.entry_count} entries"
        console.print(
            f"  → {event.status or '-'} {event.outcome}{entries}, {event.size} bytes"
            f"{' (truncated)' if event.truncated else ''}, {event.elapsed_ms:.0f} ms"
        )
    elif isinstance(event, events.Error):
        console.print(f"[red]error:[/red] {escape(event.message)}")
    elif isinstance(event, events.Finished):
        r = event.result
        colour = "green" if r.status == "completed" else "yellow"
        console.rule(f"[{colour}]{r.status}[/{colour}]")
        console.print(f"result: {escape(str(r.result))}")
        console.print(
            f"rounds: {r.rounds} · tokens: {r.usage['prompt_tokens']} prompt / "
            f"{r.usage['completion_tokens']} completion · {r.elapsed_seconds:.2f} s"
        )
