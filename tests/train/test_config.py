"""train.yaml: typed, defaulted, paths relative to the file, mistakes named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sara.common.errors import UserError
from sara.train import config


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "models" / "base").mkdir(parents=True)
    path = tmp_path / "train.yaml"
    path.write_text("base_model: models/base\ndataset: train.jsonl\n")
    cfg = config.load(path)
    assert cfg.base_model == str(tmp_path / "models" / "base")
    assert cfg.dataset == tmp_path / "train.jsonl"
    assert cfg.output_dir == tmp_path / "adapters" / "sara-lora"
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 32, 0.05)
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (cfg.qlora, cfg.max_steps, cfg.epochs, cfg.seed) == ("auto", None, 1.0, 0)


def test_hub_ids_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("base_model: HuggingFaceTB/SmolLM2-135M-Instruct\ndataset: /d/t.jsonl\n")
    cfg = config.load(path)
    assert cfg.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cfg.dataset == Path("/d/t.jsonl")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: t.jsonl\n", "base_model: Field required"),
        ("base_model: m\ndataset: t\nqlora: maybe\n", "qlora"),
        ("base_model: m\ndataset: t\nlora: {r: 0}\n", "lora.r"),
        ("base_model: m\ndataset: t\nlearning_rte: 1\n", "learning_rte"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        config.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("setting", "cuda", "bnb", "expected"),
    [
        ("auto", True, True, True),
        ("auto", True, False, False),  # CUDA without bitsandbytes: bfloat16 LoRA
        ("auto", False, True, False),  # CPU: plain LoRA
        ("off", True, True, False),
        ("on", True, True, True),
    ],
)
def test_qlora_decision(setting: str, cuda: bool, bnb: bool, expected: bool) -> None:
    from sara.train import sft

    assert sft.use_qlora(setting, cuda, bnb) is expected


@pytest.mark.parametrize(("cuda", "message"), [(False, "needs a CUDA GPU"), (True, "bitsandbytes")])
def test_qlora_on_refuses_what_it_cannot_do(cuda: bool, message: str) -> None:
    from sara.train import sft

    with pytest.raises(UserError, match=message):
        sft.use_qlora("on", cuda, False)


def test_sft_module_imports_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import sara.train.sft, sara.train.merge, sara.train.cli, sara.cli; "
        "sys.exit(any(m in sys.modules for m in ('torch', 'transformers', 'peft', 'trl')))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
