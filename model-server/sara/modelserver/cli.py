"""``sara model …``: run the OpenAI-compatible local model server.

Module level stays light (Typer only); FastAPI, uvicorn and llama.cpp load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sara.common.errors import UserError

app = typer.Typer(
    help=(
        "OpenAI-compatible local model server: a deterministic reference policy "
        "(rule-based, not a language model) or an optional small CPU model."
    ),
    no_args_is_help=True,
)

POLICIES = ("reference",)


@app.callback()
def model() -> None:
    """OpenAI-compatible local model server (a group, so ``serve`` stays a subcommand)."""


@app.command("serve")
def serve(
    policy: str | None = typer.Option(
        None,
        help="'reference': the deterministic rule-based MedAgentBench policy (NOT a language "
        "model). The default when --gguf is not given.",
    ),
    gguf: Path | None = typer.Option(
        None, help="Serve this GGUF model with llama-cpp-python (extra 'cpu-llm') instead."
    ),
    chat_format: str | None = typer.Option(None, help="llama.cpp chat format for --gguf."),
    host: str | None = typer.Option(None, help="Address to listen on [default: 127.0.0.1]."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port [default: 8001]."),
    latency: float | None = typer.Option(
        None, min=0.0, help="Extra seconds every chat completion waits (non-blocking)."
    ),
    served_name: str | None = typer.Option(
        None,
        help="Model name in /v1/models [default: sara-reference-policy, or the GGUF file's stem].",
    ),
    context_tokens: int | None = typer.Option(None, min=256, help="Context window for --gguf."),
    threads: int | None = typer.Option(None, min=1, help="CPU threads for --gguf."),
    log_level: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Serve /v1/models, /v1/chat/completions (streaming or not) and /health.

    The reference policy is a deterministic rule-based program, NOT a language model.
    """
    from pydantic import ValidationError

    from sara.common import logs
    from sara.modelserver import engines
    from sara.modelserver.settings import ModelServerSettings

    if policy is not None and gguf is not None:
        raise UserError("give either --policy or --gguf, not both")
    if policy is not None and policy not in POLICIES:
        raise UserError(f"--policy {policy!r}: unknown policy (choose from: {', '.join(POLICIES)})")
    if served_name is None and gguf is not None:
        served_name = gguf.stem
    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "latency": latency,
        "served_name": served_name,
        "gguf": gguf,
        "chat_format": chat_format,
        "context_tokens": context_tokens,
        "threads": threads,
        "log_level": log_level,
    }
    try:
        settings = ModelServerSettings(**{k: v for k, v in given.items() if v is not None})
        logs.configure(settings.log_level)
    except (ValidationError, ValueError) as exc:
        raise UserError(f"invalid model server settings: {exc}") from exc

    import uvicorn

    from sara.common.http import BoundedHttpToolsProtocol, ensure_port_free
    from sara.modelserver.app import create_app

    ensure_port_free(settings.host, settings.port)  # before loading a model
    engine = engines.build(settings)
    uvicorn.run(
        create_app(settings, engine),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=BoundedHttpToolsProtocol,
    )
