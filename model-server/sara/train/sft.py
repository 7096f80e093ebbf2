"""``sara train sft``: LoRA (QLoRA on CUDA) supervised fine-tuning with TRL's ``SFTTrainer``.

Loss falls on the model's own turns only. :func:`encode` renders each example with the
tokenizer's chat template and marks the tokens of every ``assistant`` message — its content and
the end-of-turn token, so the model learns to stop — as labels; the prompt, the FHIR answers and
the template's role headers get ``-100``. The dataset reaches the trainer already tokenized with
its ``labels``, so this works with any chat template (no ``{% generation %}`` markers needed).

Quantisation (``qlora``): ``auto`` loads the base model in 4-bit NF4 (bitsandbytes, double
quantisation, bfloat16 compute) when CUDA and bitsandbytes are present, and plain LoRA in full
precision otherwise (CPU); ``on`` insists on QLoRA; ``off`` never quantises.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sara.common.errors import UserError
from sara.train import checkpoint, curve, deps
from sara.train.config import TrainConfig

IGNORE = -100


@dataclass(frozen=True)
class Result:
    output_dir: Path
    metrics: dict[str, Any]


def read_dataset(path: Path) -> list[list[dict[str, str]]]:
    """The ``messages`` of every example in a ``sara train export`` JSONL file."""
    if not path.is_file():
        raise UserError(f"dataset {path} does not exist (write it with `sara train export`)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}:{number}: not an example with `messages`") from exc
        rows.append(messages)
    if not rows:
        raise UserError(f"dataset {path} holds no examples")
    return rows


def _render(tokenizer: Any, messages: list[dict[str, str]], prompt: bool = False) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def encode(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int
) -> dict[str, list[int]] | None:
    """``input_ids`` and ``labels`` (``-100`` outside assistant turns), cut at ``max_length``;
    ``None`` when no assistant token is left to learn from."""
    ids = _render(tokenizer, messages)
    labels = [IGNORE] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = _render(tokenizer, messages[:i], prompt=True)
        upto = _render(tokenizer, messages[: i + 1])
        if ids[: len(head)] != head or ids[: len(upto)] != upto:
            raise UserError("the chat template does not render conversations prefix by prefix")
        labels[len(head) : len(upto)] = ids[len(head) : len(upto)]
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def use_qlora(setting: str, cuda: bool, bitsandbytes: bool) -> bool:
    """Whether to load the base model in 4-bit NF4 (see the module docstring)."""
    if setting == "on":
        if not cuda:
            raise UserError("qlora: on needs a CUDA GPU; use `qlora: auto` or `off` on CPU")
        if not bitsandbytes:
            raise UserError("qlora: on needs bitsandbytes (`pip install bitsandbytes`, CUDA only)")
        return True
    return setting == "auto" and cuda and bitsandbytes


def _bitsandbytes() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def run(config: TrainConfig, *, progress: bool = True) -> Result:
    """Train a LoRA adapter on ``config.dataset``; write it, ``metrics.json`` and ``loss.png``."""
    torch, transformers, peft, trl, datasets, _ = deps.require()
    rows = read_dataset(config.dataset)
    cuda = bool(torch.cuda.is_available())
    quantized = use_qlora(config.qlora, cuda, _bitsandbytes())
    transformers.set_seed(config.seed)
    load_kwargs: dict[str, Any] = {}
    if quantized and config.gguf_file:
        raise UserError("QLoRA quantises a checkpoint, not a GGUF file: set `qlora: off`")
    if quantized:
        load_kwargs["device_map"] = {"": 0}  # bitsandbytes places 4-bit weights on load
        load_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    elif cuda:
        load_kwargs["dtype"] = torch.bfloat16
    model, tokenizer = checkpoint.load(config.base_model, config.gguf_file, **load_kwargs)
    if quantized:
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    encoded = [encode(tokenizer, messages, config.max_seq_length) for messages in rows]
    kept = [e for e in encoded if e is not None]
    if not kept:
        raise UserError(
            f"no example keeps an assistant turn within max_seq_length {config.max_seq_length}"
        )
    train = datasets.Dataset.from_list(kept)
    evaluation = None
    if config.eval_dataset is not None:
        held = [
            encode(tokenizer, m, config.max_seq_length) for m in read_dataset(config.eval_dataset)
        ]
        evaluation = datasets.Dataset.from_list([e for e in held if e is not None])
    lora = peft.LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    args = trl.SFTConfig(
        output_dir=str(config.output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_steps,
        logging_steps=config.logging_steps,
        seed=config.seed,
        max_length=config.max_seq_length,
        bf16=cuda,
        use_cpu=not cuda,
        report_to="none",
        save_strategy="no",
        eval_strategy="epoch" if evaluation is not None else "no",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        **({"gradient_checkpointing": True} if config.gradient_checkpointing else {}),
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora,
    )
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    config.output_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(config.output_dir))
    tokenizer.save_pretrained(str(config.output_dir))
    facts = {
        "base_model": config.base_model,
        "gguf_file": config.gguf_file,
        "examples": len(kept),
        "examples_too_long": len(encoded) - len(kept),
        "assistant_tokens": sum(sum(t != IGNORE for t in e["labels"]) for e in kept),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 2),
        "device": "cuda" if cuda else "cpu",
        "qlora": quantized,
        "config": config.model_dump(mode="json"),
    }
    metrics = curve.write(config.output_dir, curve.losses(trainer.state.log_history), facts)
    return Result(config.output_dir, metrics)
