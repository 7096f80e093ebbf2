"""vLLM's OpenAI server command line from a launch profile (pure: no I/O, no vLLM import).

A launch profile (``model-server/profiles/NAME.yaml``) is a ClinicalAgent ``spec.model``
fragment. :func:`argv` renders the command the operator puts in the model Deployment for the same
fragment — ``python3 -m vllm.entrypoints.openai.api_server`` and its flags, in the same order —
so ``sara model serve --engine vllm --profile NAME`` on a GPU machine runs what the cluster runs.
The operator is another component (never imported here); ``tests/contracts/test_vllm_command.py``
pins the two renderings to each other for every profile.

Only the fields that shape the command line are read; cluster-only fields (``gpu.resourceName``,
``cache``, ``replicas``, ``image``, …) are accepted and ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from sara.common.errors import UserError

MODULE = "vllm.entrypoints.openai.api_server"
#: The pinned image's version (operator default ``vllm/vllm-openai:v0.10.1.1``); extra ``vllm``.
PINNED_VERSION = "0.10.1.1"
#: Where a ``pvc://claim/path`` is mounted in the model pod (the operator's ``PVC_MOUNT``).
PVC_MOUNT = "/models/pvc"
#: Flags the command line owns, as the operator refuses them in ``vllm.extraArgs``.
#: The last two would write prompts and answers (PHI) to the log; vLLM (since 0.10.1) does not
#: by default, and Sara's profiles never turn it on (docs/phi.md).
RESERVED_FLAGS = (
    "--host",
    "--port",
    "--model",
    "--served-model-name",
    "--api-key",
    "--enable-log-requests",
    "--enable-log-outputs",
)
#: Environment the operator gives vLLM that matters outside a pod too (no phoning home).
ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


class _Base(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class VllmSettings(_Base):
    """``spec.model.vllm``, with the CRD's defaults."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: int | None = Field(16384, ge=256, le=1048576)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_num_seqs: int | None = Field(None, ge=1, le=4096)
    enable_prefix_caching: bool = True
    dtype: Literal["auto", "half", "float16", "bfloat16", "float32"] = "auto"
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("extra_args")
    @classmethod
    def _no_owned_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in RESERVED_FLAGS:
                raise ValueError(f"{arg.split('=', 1)[0]} is not allowed in extraArgs")
        return value


class GpuSettings(_Base):
    count: int = Field(1, ge=1, le=16)


class LaunchProfile(_Base):
    """The parts of a ``spec.model`` fragment that shape vLLM's command line."""

    model_config = ConfigDict(extra="ignore")

    engine: Literal["vllm"] = "vllm"
    uri: str = Field(pattern=r"^(hf://[^/\s]+/[^\s]+|pvc://[a-z0-9][-a-z0-9.]*/[^\s]*)$")
    revision: str | None = None
    served_name: str = Field("sara", min_length=1, max_length=128)
    gpu: GpuSettings = Field(default_factory=GpuSettings)
    vllm: VllmSettings = Field(default_factory=VllmSettings)


def parse(fragment: Any, source: str = "profile") -> LaunchProfile:
    """Validate a profile (the YAML's mapping); :class:`UserError` names the first problem."""
    try:
        return LaunchProfile.model_validate(fragment)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "profile"
        raise UserError(f"{source}: {where}: {err['msg']}") from None


def model_argument(uri: str) -> str:
    """``--model``: the Hub id of ``hf://org/name``, the in-pod path of ``pvc://claim/path``."""
    if uri.startswith("hf://"):
        return uri.removeprefix("hf://")
    _claim, _, path = uri.removeprefix("pvc://").partition("/")
    return f"{PVC_MOUNT}/{path}".rstrip("/")


def args(profile: LaunchProfile, *, host: str, port: int, model: str | None = None) -> list[str]:
    """vLLM's flags for ``profile``; ``model`` replaces the URI's ``--model`` (a local path)."""
    v = profile.vllm
    out = [
        f"--host={host}",
        f"--port={port}",
        f"--model={model or model_argument(profile.uri)}",
        f"--served-model-name={profile.served_name}",
        f"--gpu-memory-utilization={v.gpu_memory_utilization}",
        f"--dtype={v.dtype}",
    ]
    if profile.revision:
        out.append(f"--revision={profile.revision}")
    if v.max_model_len is not None:
        out.append(f"--max-model-len={v.max_model_len}")
    if v.max_num_seqs is not None:
        out.append(f"--max-num-seqs={v.max_num_seqs}")
    if profile.gpu.count > 1:
        out.append(f"--tensor-parallel-size={profile.gpu.count}")
    out.append(
        "--enable-prefix-caching" if v.enable_prefix_caching else "--no-enable-prefix-caching"
    )
    out.extend(v.extra_args)
    return out


def argv(
    profile: LaunchProfile,
    *,
    python: str = "python3",
    host: str,
    port: int,
    model: str | None = None,
) -> list[str]:
    """The whole command: ``python -m vllm.entrypoints.openai.api_server`` and its flags."""
    return [python, "-m", MODULE, *args(profile, host=host, port=port, model=model)]


def profile_path(name: str, search: list[Path]) -> Path:
    """A profile given as a path, or by name (``NAME`` → ``NAME.yaml``) in ``search``."""
    given = Path(name)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given
    for folder in search:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for folder in search if folder.is_dir() for p in folder.glob("*.yaml")})
    listed = ", ".join(known) if known else "none found"
    raise UserError(f"--profile {name!r}: no such launch profile (known: {listed})")
