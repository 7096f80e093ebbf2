"""`sara train job`: the GPU training run as a strictly valid, PSS-restricted Kubernetes Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from typer.testing import CliRunner

from sara import cli
from sara.train import config, job

SPEC = job.JobSpec(
    name="sft-smollm2",
    image="registry.example/sara-train:1",
    dataset_pvc="sara-datasets",
    output_pvc="sara-adapters",
    cache_pvc="sara-hf-cache",
    namespace="research",
    memory="32Gi",
)


def _config(tmp_path: Path) -> config.TrainConfig:
    path = tmp_path / "train.yaml"
    path.write_text(
        "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\n"
        "dataset: data/train.jsonl\noutput_dir: out/smollm2-sara\nmax_steps: 100\n"
    )
    return config.load(path)


def test_manifests_validate_strictly(tmp_path: Path) -> None:
    for doc in job.manifests(SPEC, _config(tmp_path)):
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_pod_is_restricted_and_asks_for_a_gpu(tmp_path: Path) -> None:
    manifest = job.job(SPEC, _config(tmp_path))
    assert manifest["spec"]["backoffLimit"] == 0
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 1, "memory": "32Gi"}
    assert c["args"] == ["train", "sft", "--config", "/etc/sara-train/train.yaml", "--no-progress"]
    assert {"name": "HF_HOME", "value": "/cache/huggingface"} in c["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cache"]["persistentVolumeClaim"] == {"claimName": "sara-hf-cache"}
    assert volumes["data"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["output"]["persistentVolumeClaim"] == {"claimName": "sara-adapters"}
    assert volumes["config"]["configMap"] == {"name": "sft-smollm2-config"}


def test_config_map_points_the_run_at_the_mounts(tmp_path: Path) -> None:
    data = yaml.safe_load(job.config_map(SPEC, _config(tmp_path))["data"]["train.yaml"])
    assert data["dataset"] == "/data/train.jsonl"
    assert data["output_dir"] == "/output/smollm2-sara"
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["max_steps"] == 100
    # what the pod reads back is a valid config
    assert config.TrainConfig.model_validate(data).qlora == "auto"


def test_cli_prints_the_manifests(tmp_path: Path) -> None:
    _config(tmp_path)
    result = CliRunner().invoke(
        cli.app,
        ["train", "job", "--config", str(tmp_path / "train.yaml"), "--dataset-pvc", "d",
         "--output-pvc", "o", "--cache-pvc", "c", "--gpus", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.31", strict=True)
    [c] = docs[1]["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
