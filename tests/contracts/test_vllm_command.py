"""`sara model serve --engine vllm --profile NAME` runs the command the operator renders.

The model server (``sara.modelserver.vllm``) and the operator (``sara.operator.builders.vllm``)
are separate components that never import each other; this test imports both and pins the
container command of the model Deployment to the local command line, for every launch profile
and for fragments that exercise every flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sara.modelserver import vllm as local
from sara.operator import model
from sara.operator.builders import vllm as cluster

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "model-server" / "profiles").glob("*.yaml"))
FRAGMENTS: dict[str, dict[str, Any]] = {
    "defaults": {"engine": "vllm", "uri": "hf://org/model"},
    "every-flag": {
        "engine": "vllm",
        "uri": "hf://org/model",
        "revision": "0123abcd",
        "servedName": "ward-model",
        "gpu": {"count": 2, "resourceName": "amd.com/gpu"},
        "replicas": 1,
        "vllm": {
            "maxModelLen": 32768,
            "gpuMemoryUtilization": 0.85,
            "maxNumSeqs": 8,
            "enablePrefixCaching": False,
            "dtype": "half",
            "extraArgs": ["--enforce-eager", "--swap-space=8"],
        },
    },
    "no-max-model-len": {"engine": "vllm", "uri": "hf://org/model", "vllm": {"maxModelLen": None}},
    "pvc": {"engine": "vllm", "uri": "pvc://weights/models/sara-4b", "cache": {"size": "1Gi"}},
}


def cluster_command(fragment: dict[str, Any]) -> list[str]:
    spec = model.parse("ward", {"model": fragment})
    deployment = cluster.deployment(spec, model.Names("ward", "ns"), model.Images())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


def local_command(fragment: dict[str, Any]) -> list[str]:
    profile = local.parse(fragment)
    return local.argv(profile, python="python3", host="0.0.0.0", port=cluster.PORT)


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_each_profile_runs_what_the_operator_renders(path: Path) -> None:
    fragment = yaml.safe_load(path.read_text())
    assert local_command(fragment) == cluster_command(fragment)


@pytest.mark.parametrize("name", FRAGMENTS)
def test_every_flag_renders_the_same(name: str) -> None:
    assert local_command(FRAGMENTS[name]) == cluster_command(FRAGMENTS[name])


def test_same_reserved_flags_and_pinned_version() -> None:
    assert set(local.RESERVED_FLAGS) == set(model.spec.RESERVED_VLLM_FLAGS)
    assert model.Images().vllm == f"vllm/vllm-openai:v{local.PINNED_VERSION}"
    assert local.PVC_MOUNT == cluster.PVC_MOUNT
    spec = model.parse("ward", {"model": FRAGMENTS["defaults"]})
    deployment = cluster.deployment(spec, model.Names("ward", "ns"), model.Images())
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert local.ENV.items() <= env.items()
