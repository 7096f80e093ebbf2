"""Base models: a checkpoint folder, a hub id, or a GGUF file turned into a plain checkpoint.

transformers reads GGUF (with the ``gguf`` package) by dequantising every tensor, but marks the
result as quantised and refuses to save or train it as such; :func:`load` rebuilds the model from
its config and copies the weights over, so it is an ordinary full-precision model. Imports of the
``train`` extra stay inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sara.train import deps


def load(base_model: str, gguf_file: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of ``base_model`` (a folder or hub id, or the folder of a GGUF)."""
    (transformers,) = deps.require("transformers")
    source: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(base_model, **source)
    model = transformers.AutoModelForCausalLM.from_pretrained(base_model, **source, **kwargs)
    if gguf_file:
        model = _plain(transformers, model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _plain(transformers: Any, model: Any) -> Any:
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain


def from_gguf(gguf: Path, out: Path) -> Path:
    """Write the GGUF model ``gguf`` as a normal checkpoint (safetensors + tokenizer) to ``out``."""
    model, tokenizer = load(str(gguf.parent), gguf.name)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
