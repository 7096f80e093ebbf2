"""The ClinicalAgent custom resource as typed pydantic models (pure: no I/O).

The CRD's ``openAPIV3Schema`` is generated from these classes (``builders.crd``; shared pieces
in ``base``, the agent's part in ``agent``), so the field
descriptions below are what ``kubectl explain clinicalagents.spec`` shows. Field names are
camelCase in YAML (aliases) and snake_case in Python.

Cross-field rules that a structural schema cannot express (engine ``vllm`` needs a ``uri`` and
at least one GPU, ``external`` needs a ``baseUrl`` …) are model validators: the operator turns
their failure into ``Accepted=False`` instead of creating children.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sara.operator.model.agent import AgentSpec
from sara.operator.model.base import (
    PRESERVE,
    ConfigMapKeyRef,
    Quantity,
    Resources,
    SecretKeyRef,
    SpecBase,
    Toleration,
)

GROUP = "clinical.sara.dev"
VERSION = "v1alpha1"
KIND = "ClinicalAgent"
PLURAL = "clinicalagents"
SINGULAR = "clinicalagent"
SHORT_NAMES = ("cla",)
API_VERSION = f"{GROUP}/{VERSION}"

#: Longest CR name for which every child name (``<name>-fhir-headless`` …) stays a DNS label.
MAX_NAME_LENGTH = 45
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class Engine(StrEnum):
    """Which model server the operator runs."""

    VLLM = "vllm"
    REFERENCE = "reference"
    EXTERNAL = "external"


class FhirMode(StrEnum):
    """Whether the operator runs a FHIR server or points the agent at an existing one."""

    MANAGED = "managed"
    EXTERNAL = "external"


class Preset(StrEnum):
    """What the managed FHIR server holds."""

    SYNTHETIC = "synthetic"
    MEDAGENTBENCH = "medagentbench"
    EMPTY = "empty"


class Gpu(SpecBase):
    """GPUs for the vLLM engine."""

    count: int = Field(1, ge=0, le=16, description="GPUs per model replica (vllm needs >= 1).")
    resource_name: str = Field(
        "nvidia.com/gpu", description="Extended resource name of the GPU device plugin."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Extra node selector for GPU nodes."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Extra tolerations for GPU node taints."
    )
    runtime_class_name: str | None = Field(
        None, description="RuntimeClass of the model pods (e.g. nvidia)."
    )


#: vLLM flags a spec may not pass through extraArgs, and what to use instead.
RESERVED_VLLM_FLAGS = {
    "--host": "the operator sets it (the Service and probes depend on it)",
    "--port": "the operator sets it (the Service and probes depend on it)",
    "--model": "use model.uri",
    "--served-model-name": "use model.servedName",
    "--api-key": (
        "the readiness probe and the agent would be refused; the NetworkPolicy already admits "
        "only the agent"
    ),
    # vLLM logs no request content by default since 0.10.1 (enable_log_requests=False)
    "--enable-log-requests": "it writes every prompt (the patient's chart) to the pod's log",
    "--enable-log-outputs": "it writes every answer (patient data) to the pod's log",
}


class Vllm(SpecBase):
    """vLLM engine settings, rendered as `vllm serve` flags."""

    max_model_len: int | None = Field(
        16384, ge=256, le=1048576, description="--max-model-len: context window in tokens."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="--gpu-memory-utilization: fraction of GPU memory used."
    )
    max_num_seqs: int | None = Field(
        None, ge=1, le=4096, description="--max-num-seqs: concurrent sequences (vLLM default)."
    )
    enable_prefix_caching: bool = Field(
        True,
        description="--enable-prefix-caching: every agent round repeats a long shared prompt.",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float32"] = Field(
        "auto", description="--dtype of the weights."
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description=(
            "More vLLM flags, appended verbatim. Flags the operator owns (--host, --port, "
            "--model, --served-model-name) and --api-key (it would fail the readiness probe and "
            "the agent; NetworkPolicies already admit only the agent) are refused, as are "
            "--enable-log-requests and --enable-log-outputs (they would write patient data to "
            "the pod's log)."
        ),
    )

    @field_validator("extra_args")
    @classmethod
    def _no_owned_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if flag in RESERVED_VLLM_FLAGS:
                raise ValueError(f"{flag} is not allowed in extraArgs: {RESERVED_VLLM_FLAGS[flag]}")
        return value


class Cache(SpecBase):
    """The PersistentVolumeClaim that keeps downloaded weights across restarts."""

    size: Quantity = Field("30Gi", description="Size of the cache PVC.")
    storage_class_name: str | None = Field(None, description="StorageClass (cluster default).")
    existing_claim: str | None = Field(
        None, description="Use this existing PVC instead of creating one."
    )
    delete_with_agent: bool = Field(
        False,
        description="Delete the cache PVC with the ClinicalAgent (default: keep the weights).",
    )


class ExternalModel(SpecBase):
    """An OpenAI-compatible model server the operator does not run."""

    base_url: str = Field(
        description="OpenAI base URL, ending in /v1.", pattern=r"^https?://", min_length=8
    )
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Bearer key of the server.")


class ModelSpec(SpecBase):
    """The language model the agent asks for its next action."""

    engine: Engine = Field(Engine.VLLM, description="vllm (GPU) | reference (CPU) | external.")
    uri: str | None = Field(
        None,
        description="Weights: hf://org/name or pvc://claim/path (required for engine vllm).",
        pattern=r"^(hf://[^/\s]+/[^\s]+|pvc://[a-z0-9][-a-z0-9.]*/[^\s]*)$",
    )
    revision: str | None = Field(None, description="Model revision (pin a commit in production).")
    served_name: str = Field(
        "sara", min_length=1, max_length=128, description="Model name the agent requests."
    )
    image: str | None = Field(None, description="Image override of the model server.")
    gpu: Gpu = Field(default_factory=Gpu, description="GPUs per replica (engine vllm).")
    replicas: int = Field(1, ge=0, le=16, description="Model server replicas.")
    vllm: Vllm = Field(default_factory=Vllm, description="vLLM engine settings.")
    cache: Cache = Field(default_factory=Cache, description="Weights cache PVC (engine vllm).")
    hf_token_secret_ref: SecretKeyRef | None = Field(
        None, description="Hugging Face token for gated models (env HF_TOKEN)."
    )
    resources: Resources | None = Field(
        None, description="CPU/memory of the model container (GPU limits are added)."
    )
    external: ExternalModel | None = Field(None, description="Engine external: where and how.")

    @model_validator(mode="after")
    def _engine_needs(self) -> ModelSpec:
        if self.engine is Engine.VLLM:
            if not self.uri:
                raise ValueError(
                    "model.engine vllm needs model.uri (hf://org/name or pvc://claim/path)"
                )
            if self.gpu.count < 1:
                raise ValueError("model.engine vllm needs model.gpu.count >= 1")
            if self.replicas > 1 and not self.cache.existing_claim:
                # The generated cache PVC is ReadWriteOnce: a second replica scheduled on
                # another node would hang in ContainerCreating (Multi-Attach error) forever.
                raise ValueError(
                    "model.replicas > 1 needs model.cache.existingClaim "
                    "(a ReadWriteMany claim): the generated cache PVC is ReadWriteOnce"
                )
        if self.engine is Engine.EXTERNAL and self.external is None:
            raise ValueError("model.engine external needs model.external.baseUrl")
        return self


class SyntheticSeed(SpecBase):
    """Sara's synthetic EHR generator settings."""

    patients: int = Field(100, ge=1, le=100000, description="Patients to generate.")
    seed: int = Field(1, ge=0, le=2**31 - 1, description="Generator seed (same seed, same EHR).")


class Seed(SpecBase):
    """Data loaded once into an empty managed FHIR server."""

    synthetic: SyntheticSeed | None = Field(
        default_factory=SyntheticSeed, description="Generate and load a synthetic EHR; null: none."
    )
    resources: Resources | None = Field(
        None,
        description="CPU/memory of each seed Job container (namespaces with a ResourceQuota).",
    )


class Storage(SpecBase):
    """The FHIR server's database volume."""

    size: Quantity = Field("10Gi", description="Size of the database PVC.")
    storage_class_name: str | None = Field(None, description="StorageClass (cluster default).")
    retain_on_delete: bool = Field(
        True, description="Keep the database PVC when the ClinicalAgent is deleted."
    )


class ManagedFhir(SpecBase):
    """A HAPI FHIR server run by the operator."""

    preset: Preset = Field(
        Preset.SYNTHETIC,
        description=(
            "synthetic: upstream HAPI seeded by a Job with Sara's generated EHR; medagentbench: "
            "the benchmark's own HAPI image with its database baked in; empty: no data."
        ),
    )
    image: str | None = Field(
        None, description="Image override (default: pinned HAPI, or the benchmark image)."
    )
    storage: Storage = Field(default_factory=Storage, description="Database volume.")
    resources: Resources | None = Field(None, description="CPU/memory of the HAPI container.")
    seed: Seed = Field(default_factory=Seed, description="Seed data (preset synthetic only).")


class FhirAuth(SpecBase):
    """Credentials for an external FHIR server."""

    secret_ref: SecretKeyRef = Field(description="Bearer token sent as Authorization header.")


class ExternalFhir(SpecBase):
    """A FHIR R4 server the operator does not run."""

    base_url: str = Field(description="FHIR base URL.", pattern=r"^https?://", min_length=8)
    auth: FhirAuth | None = Field(None, description="Bearer token, if the server needs one.")
    ca_bundle: ConfigMapKeyRef | None = Field(
        None, description="ConfigMap key with the PEM CA bundle of the server."
    )


class FhirSpec(SpecBase):
    """The FHIR R4 server the agent reads and writes."""

    mode: FhirMode = Field(FhirMode.MANAGED, description="managed (HAPI StatefulSet) | external.")
    managed: ManagedFhir = Field(default_factory=ManagedFhir, description="Mode managed.")
    external: ExternalFhir | None = Field(None, description="Mode external.")

    @model_validator(mode="after")
    def _mode_needs(self) -> FhirSpec:
        if self.mode is FhirMode.EXTERNAL and self.external is None:
            raise ValueError("fhir.mode external needs fhir.external.baseUrl")
        return self


class Monitoring(SpecBase):
    """Prometheus Operator integration."""

    service_monitor: bool = Field(
        True, description="Create ServiceMonitors (agent, vLLM) when their CRD exists."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on ServiceMonitors (Prometheus selector)."
    )
    interval: str = Field("30s", pattern=r"^[0-9]+(ms|s|m|h)$", description="Scrape interval.")


class PodDefaults(SpecBase):
    """Settings applied to every generated pod."""

    security_context: dict[str, Any] | None = Field(
        None,
        description="Pod securityContext replacing the restricted default.",
        json_schema_extra=PRESERVE,
    )
    container_security_context: dict[str, Any] | None = Field(
        None,
        description="Container securityContext replacing the restricted default.",
        json_schema_extra=PRESERVE,
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations.")
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Names of image pull Secrets."
    )
    priority_class_name: str | None = Field(None, description="PriorityClass of every pod.")


class ClinicalAgentSpec(SpecBase):
    """Desired state of a ClinicalAgent: model server, FHIR server and agent."""

    image: str | None = Field(
        None, description="Sara image (agent, reference model, seed Job); operator default."
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="The language model.")
    fhir: FhirSpec = Field(default_factory=FhirSpec, description="The FHIR R4 server.")
    agent: AgentSpec = Field(default_factory=AgentSpec, description="The agent service.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Prometheus.")
    pod_defaults: PodDefaults = Field(
        default_factory=PodDefaults, description="Applied to every generated pod."
    )
