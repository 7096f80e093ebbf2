"""Facts derived from a ClinicalAgent: child names, URLs, default images, validation (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sara.operator.model.spec import (
    DNS_LABEL,
    MAX_NAME_LENGTH,
    ClinicalAgentSpec,
    Engine,
    FhirMode,
    Preset,
)


@dataclass(frozen=True)
class Images:
    """Default images, set in the operator's settings (the CR may override each)."""

    sara: str = "ghcr.io/sara-clinical/sara:0.1.0"
    vllm: str = "vllm/vllm-openai:v0.10.1.1"
    hapi: str = "hapiproject/hapi:v7.6.0"
    medagentbench: str = "jyxsu6/medagentbench:latest"


@dataclass(frozen=True)
class Names:
    """Names of every child of one ClinicalAgent (pure function of its name)."""

    instance: str
    namespace: str

    @property
    def model(self) -> str:
        return f"{self.instance}-model"

    @property
    def model_cache(self) -> str:
        return f"{self.instance}-model-cache"

    @property
    def fhir(self) -> str:
        return f"{self.instance}-fhir"

    @property
    def fhir_headless(self) -> str:
        return f"{self.instance}-fhir-headless"

    @property
    def fhir_config(self) -> str:
        return f"{self.instance}-fhir-config"

    @property
    def seed(self) -> str:
        return f"{self.instance}-seed"

    @property
    def agent(self) -> str:
        return f"{self.instance}-agent"

    @property
    def agent_keys(self) -> str:
        return f"{self.instance}-agent-api-keys"

    @property
    def agent_runs(self) -> str:
        return f"{self.instance}-agent-runs"

    def url(self, service: str, port: int, path: str = "") -> str:
        return f"http://{service}.{self.namespace}.svc:{port}{path}"


class InvalidSpecError(ValueError):
    """The spec parsed as YAML but breaks a rule; the message is safe to show in status."""


def parse(name: str, spec: dict[str, Any]) -> ClinicalAgentSpec:
    """Validate a CR's name and spec; raise :class:`InvalidSpecError` with a short reason."""
    if len(name) > MAX_NAME_LENGTH or not DNS_LABEL.match(name):
        raise InvalidSpecError(
            f"metadata.name must be a DNS label of at most {MAX_NAME_LENGTH} characters"
        )
    try:
        return ClinicalAgentSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidSpecError(_summary(exc)) from None


def _summary(exc: Any) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


@dataclass(frozen=True)
class OperatorConfig:
    """Settings of one operator process (from ``sara operator run`` flags / env)."""

    images: Images = Images()
    status_interval: float = 15.0  # seconds between status refreshes of each ClinicalAgent


# Facts derived from a spec that both builders and status need (ports, URLs, seeding).
AGENT_PORT = 8000
MODEL_PORT = 8000
FHIR_PORT = 8080


def fhir_base_url(spec: ClinicalAgentSpec, names: Names) -> str:
    """The FHIR base the agent uses; always ends in ``/`` (the prompt contract)."""
    if spec.fhir.mode is FhirMode.EXTERNAL:
        assert spec.fhir.external is not None
        base = spec.fhir.external.base_url
        return base if base.endswith("/") else base + "/"
    return names.url(names.fhir, FHIR_PORT, "/fhir/")


def model_base_url(spec: ClinicalAgentSpec, names: Names) -> str:
    """The OpenAI base URL the agent uses (ends in ``/v1``)."""
    if spec.model.engine is Engine.EXTERNAL:
        assert spec.model.external is not None
        return spec.model.external.base_url.rstrip("/")
    return names.url(names.model, MODEL_PORT, "/v1")


def seeds(spec: ClinicalAgentSpec) -> bool:
    """Whether this spec loads a synthetic EHR into its managed FHIR server."""
    fhir = spec.fhir
    return (
        fhir.mode is FhirMode.MANAGED
        and fhir.managed.preset is Preset.SYNTHETIC
        and fhir.managed.seed.synthetic is not None
    )
