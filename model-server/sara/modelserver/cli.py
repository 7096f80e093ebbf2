"""``sara model …``: run the OpenAI-compatible local model server, or vLLM from a profile.

Module level stays light (Typer only); FastAPI, uvicorn and llama.cpp load inside the command,
and vLLM runs as its own program (``exec``), never imported here.
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
ENGINES = ("reference", "vllm")


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
    engine_name: str | None = typer.Option(
        None,
        "--engine",
        help="'vllm': run vLLM's OpenAI server (needs a GPU and vLLM 0.10.1.1) with the "
        "command line the operator renders for --profile. 'reference': as --policy reference.",
    ),
    profile: str | None = typer.Option(
        None, help="--engine vllm: a launch profile name (model-server/profiles) or YAML path."
    ),
    model_path: str | None = typer.Option(
        None, "--model", help="--engine vllm: serve these weights (a local path or Hub id)."
    ),
    print_command: bool = typer.Option(
        False, "--print-command", help="--engine vllm: print the command line and exit."
    ),
) -> None:
    """Serve /v1/models, /v1/chat/completions (streaming or not) and /health.

    The reference policy is a deterministic rule-based program, NOT a language model.
    """
    if engine_name is not None and engine_name not in ENGINES:
        raise UserError(
            f"--engine {engine_name!r}: unknown engine (choose from: {', '.join(ENGINES)})"
        )
    if engine_name == "vllm":
        others = {"--policy": policy, "--gguf": gguf, "--latency": latency}
        given_flags = [flag for flag, value in others.items() if value is not None]
        if served_name or chat_format or context_tokens or threads:
            given_flags.append("a reference/GGUF option")
        if given_flags:
            raise UserError(
                f"--engine vllm takes its settings from --profile, not {given_flags[0]}"
            )
        _serve_vllm(profile, host, port, model_path, print_command)
        return
    if engine_name == "reference":
        if gguf is not None:
            raise UserError("give either --engine reference or --gguf, not both")
        policy = policy or "reference"
    if profile is not None or model_path is not None or print_command:
        raise UserError("--profile, --model and --print-command go with --engine vllm")
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


def _profile_folders() -> list[Path]:
    """Where ``--profile NAME`` is looked up: $SARA_MODEL_PROFILES, then the profiles shipped
    beside the package (a wheel that includes them), then the source tree's."""
    import os

    from sara.modelserver import vllm

    here = Path(vllm.__file__).resolve().parent
    folders = [here / "profiles", here.parents[1] / "profiles"]
    env = os.environ.get("SARA_MODEL_PROFILES")
    return [Path(env), *folders] if env else folders


def _serve_vllm(
    name: str | None, host: str | None, port: int | None, model: str | None, print_only: bool
) -> None:
    """Build vLLM's command line from a profile; print it, or replace this process with it."""
    import importlib.metadata
    import importlib.util
    import os
    import shlex
    import sys

    import yaml

    from sara.modelserver import vllm

    if name is None:
        raise UserError("--engine vllm needs --profile NAME (see model-server/profiles)")
    path = vllm.profile_path(name, _profile_folders())
    try:
        fragment = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the profile ({exc})") from exc
    profile = vllm.parse(fragment, str(path))
    if model is None and profile.uri.startswith("pvc://"):
        raise UserError(
            f"{path}: a pvc:// model exists only in a cluster; give --model with a local copy"
        )
    command = vllm.argv(
        profile, python=sys.executable, host=host or "127.0.0.1", port=port or 8001, model=model
    )
    if print_only:
        typer.echo(shlex.join(command))
        return
    if importlib.util.find_spec("vllm") is None:
        raise UserError(
            f"vLLM is not installed here: pip install 'vllm=={vllm.PINNED_VERSION}' (the version "
            "the cluster image pins; it needs an NVIDIA GPU with CUDA)"
        )
    installed = importlib.metadata.version("vllm")
    if installed != vllm.PINNED_VERSION:
        typer.echo(
            f"note: vLLM {installed} is installed; the cluster image pins {vllm.PINNED_VERSION}",
            err=True,
        )
    typer.echo(shlex.join(command), err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, {**os.environ, **vllm.ENV})  # noqa: S606 - no shell: argv
