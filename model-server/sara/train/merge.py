"""``sara train merge``: fold a LoRA adapter into its base model — a checkpoint vLLM serves.

The base is the one the adapter was trained on (``metrics.json`` beside it names it, GGUF file
included), unless given. The merge runs in full precision on CPU (a 4-bit base cannot be merged
exactly), then saves safetensors, the tokenizer and its chat template: ``sara model serve
--engine vllm --profile NAME --model OUT`` serves the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sara.common.errors import UserError
from sara.train import checkpoint, curve, deps

DTYPES = ("float32", "bfloat16", "float16")


def trained_base(adapter: Path) -> tuple[str, str | None]:
    """``(base_model, gguf_file)`` recorded by ``sara train sft`` (or the adapter config)."""
    metrics = adapter / curve.METRICS
    if metrics.is_file():
        facts = json.loads(metrics.read_text(encoding="utf-8"))
        return str(facts["base_model"]), facts.get("gguf_file")
    config = adapter / "adapter_config.json"
    if config.is_file():
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if base:
            return str(base), None
    raise UserError(f"{adapter} names no base model: pass --base-model")


def run(
    adapter: Path,
    out: Path,
    *,
    base_model: str | None = None,
    gguf_file: str | None = None,
    dtype: str = "bfloat16",
) -> Path:
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"{adapter} is not a LoRA adapter (no adapter_config.json)")
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    torch, peft = deps.require("torch", "peft")
    if base_model is None:
        base_model, gguf_file = trained_base(adapter)
    model, tokenizer = checkpoint.load(base_model, gguf_file, dtype=torch.float32)
    merged: Any = peft.PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
