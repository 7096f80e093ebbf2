"""``train.yaml``: the typed configuration of ``sara train sft`` (and of the cluster Job).

Pure: a pydantic model and a loader. Relative paths are resolved against the file's folder, so a
config travels with its dataset. Every field has a default except the base model and the dataset::

    base_model: ./checkpoints/smollm2-135m      # a folder, or a hub id where the hub is reachable
    dataset: ./train.jsonl                      # `sara train export` output
    output_dir: ./adapters/smollm2-sara
    lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}
    learning_rate: 2.0e-4
    epochs: 1
    max_steps: null                              # a number overrides epochs
    max_seq_length: 4096
    batch_size: 1
    grad_accumulation: 8
    seed: 0
    qlora: auto                          # auto: 4-bit NF4 where CUDA is, plain LoRA elsewhere
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sara.common.errors import UserError


class Lora(BaseModel):
    """The adapter: rank, scale, dropout and which projections it wraps."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


class TrainConfig(BaseModel):
    """One supervised fine-tuning run (LoRA, or QLoRA on CUDA)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str
    gguf_file: str | None = None  # a GGUF file inside base_model, dequantised on load
    dataset: Path
    eval_dataset: Path | None = None
    output_dir: Path = Path("adapters/sara-lora")
    lora: Lora = Field(default_factory=Lora)
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    max_seq_length: int = Field(4096, ge=64)
    batch_size: int = Field(1, ge=1)
    grad_accumulation: int = Field(8, ge=1)
    warmup_steps: int = Field(0, ge=0)
    seed: int = 0
    qlora: Literal["auto", "on", "off"] = "auto"
    logging_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False

    def resolved(self, base: Path) -> TrainConfig:
        """Paths relative to ``base`` (the config file's folder) made absolute."""

        def at(path: Path) -> Path:
            return path if path.is_absolute() else (base / path).resolve()

        model = self.base_model
        if model.startswith((".", "/")) or (base / model).exists():
            model = str(at(Path(model)))
        return self.model_copy(
            update={
                "base_model": model,
                "dataset": at(self.dataset),
                "eval_dataset": at(self.eval_dataset) if self.eval_dataset else None,
                "output_dir": at(self.output_dir),
            }
        )


def load(path: Path) -> TrainConfig:
    """Read and check ``train.yaml``; a mistake is a :class:`UserError` naming the field."""
    if not path.is_file():
        raise UserError(f"config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings")
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: {where}: {first['msg']}") from exc
    return config.resolved(path.resolve().parent)
