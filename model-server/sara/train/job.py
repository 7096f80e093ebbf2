"""The GPU training run as a Kubernetes Job: a ConfigMap holding ``train.yaml`` and the Job.

Pure builders (no client, no env): the spec and the config in, plain dicts out; ``sara train job``
prints them as YAML for ``kubectl apply -f -``. The pod meets the *restricted* Pod Security
Standard (non-root, no privilege escalation, every capability dropped, RuntimeDefault seccomp,
read-only root filesystem) and mounts:

* ``/data``   the dataset volume (a PVC, read-only) holding the exported JSONL;
* ``/output`` the output volume (a PVC) the adapter, ``metrics.json`` and the loss curve go to;
* ``/cache``  the cache PVC: ``HF_HOME`` (base weights downloaded once, reused by every run);
* ``/etc/sara-train`` the ConfigMap with ``train.yaml``, its paths rewritten to those mounts;
* ``/tmp`` and ``/dev/shm`` as emptyDirs (the root filesystem is read-only; torch needs shm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from sara.train.config import TrainConfig

CONFIG_DIR = "/etc/sara-train"
DATA_DIR = "/data"
OUTPUT_DIR = "/output"
CACHE_DIR = "/cache"
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the pod, not this machine's /tmp
SHM_DIR = "/dev/shm"  # noqa: S108 - likewise
UID = 10001  # the Sara image's user


@dataclass(frozen=True)
class JobSpec:
    """Where the Job runs and what it mounts."""

    name: str
    image: str
    dataset_pvc: str
    output_pvc: str
    cache_pvc: str
    namespace: str | None = None
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    memory: str | None = None  # a memory request and limit; none by default
    backoff_limit: int = 0  # a failed run is looked at, not silently retried
    ttl_seconds: int = 7 * 24 * 3600


def labels(spec: JobSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sara-train",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/managed-by": "sara",
    }


def _metadata(spec: JobSpec, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(spec)}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def cluster_config(config: TrainConfig) -> dict[str, Any]:
    """``config`` as the pod reads it: dataset, evaluation set and output under the mounts."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["dataset"] = str(PurePosixPath(DATA_DIR) / PurePosixPath(config.dataset).name)
    if config.eval_dataset is not None:
        data["eval_dataset"] = str(
            PurePosixPath(DATA_DIR) / PurePosixPath(config.eval_dataset).name
        )
    data["output_dir"] = str(PurePosixPath(OUTPUT_DIR) / PurePosixPath(config.output_dir).name)
    return data


def config_map(spec: JobSpec, config: TrainConfig) -> dict[str, Any]:
    text = yaml.safe_dump(cluster_config(config), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, f"{spec.name}-config"),
        "data": {"train.yaml": text},
    }


def job(spec: JobSpec, config: TrainConfig) -> dict[str, Any]:
    """The Job running ``sara train sft`` on ``spec.gpus`` GPUs of ``spec.gpu_resource``."""
    limits: dict[str, Any] = {spec.gpu_resource: spec.gpus}
    resources: dict[str, Any] = {"limits": limits}
    if spec.memory:
        limits["memory"] = spec.memory
        resources["requests"] = {"memory": spec.memory}
    container = {
        "name": "train",
        "image": spec.image,
        "command": ["sara"],
        "args": ["train", "sft", "--config", f"{CONFIG_DIR}/train.yaml", "--no-progress"],
        "env": [
            {"name": "HF_HOME", "value": f"{CACHE_DIR}/huggingface"},
            {"name": "HOME", "value": TMP_DIR},
            {"name": "MPLCONFIGDIR", "value": f"{TMP_DIR}/matplotlib"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR, "readOnly": True},
            {"name": "output", "mountPath": OUTPUT_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
            {"name": "shm", "mountPath": SHM_DIR},
        ],
    }
    pod = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "tolerations": [{"key": spec.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{spec.name}-config"}},
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": spec.dataset_pvc, "readOnly": True},
            },
            {"name": "output", "persistentVolumeClaim": {"claimName": spec.output_pvc}},
            {"name": "cache", "persistentVolumeClaim": {"claimName": spec.cache_pvc}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, spec.name),
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "ttlSecondsAfterFinished": spec.ttl_seconds,
            "template": {"metadata": {"labels": labels(spec)}, "spec": pod},
        },
    }


def manifests(spec: JobSpec, config: TrainConfig) -> list[dict[str, Any]]:
    """Everything ``kubectl apply`` needs, in order: the ConfigMap, then the Job."""
    return [config_map(spec, config), job(spec, config)]
