"""LoRA SFT on CPU with SmolLM2-135M: assistant-only loss, a falling curve, save/reload, merge.

One short run (session fixture) serves every test here; the base checkpoint is cached between
sessions (see conftest). Skipped without the ``train`` extra; ``make test`` installs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sftdata import API, HELD_OUT, PEOPLE, prompt, record

from sara.train import config, export, merge, sft

# transformers 5 renames gradient checkpointing; TRL and PEFT still use the old names
pytestmark = [
    pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]
STEPS = 6


@pytest.fixture(scope="session")
def trained(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> sft.Result:
    import torch

    # one thread: on a shared 2-core machine OpenMP's spinning threads make two ~6x slower
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("sft")
    examples, _ = export.examples(
        [record(i, p) for i, p in enumerate(PEOPLE)], guard=export.Guard.of([])
    )
    dataset = folder / "train.jsonl"
    dataset.write_text("".join(json.dumps(e) + "\n" for e in examples))
    (folder / "train.yaml").write_text(
        f"base_model: {base_model}\ndataset: train.jsonl\noutput_dir: adapter\n"
        f"max_steps: {STEPS}\nlearning_rate: 3.0e-3\nbatch_size: 2\ngrad_accumulation: 1\n"
        "max_seq_length: 512\nlora: {r: 8, alpha: 16, dropout: 0.0}\nseed: 1\n"
    )
    return sft.run(config.load(folder / "train.yaml"), progress=False)


def _first_action(model: Any, tokenizer: Any, person: tuple[str, str, str, str]) -> str:
    messages = [{"role": "user", "content": prompt(*person[:3])}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=28, do_sample=False)
    text: str = tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return text.strip()


def test_only_assistant_tokens_carry_loss(base_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    [example], _ = export.examples([record(0, PEOPLE[0])], guard=None)
    encoded = sft.encode(tokenizer, example["messages"], 4096)
    assert encoded is not None
    learned = [t for t in encoded["labels"] if t != sft.IGNORE]
    text = tokenizer.decode(learned)
    assistant = [m["content"] for m in example["messages"] if m["role"] == "assistant"]
    # exactly the two model turns, each with its end-of-turn token, and nothing else
    assert text == "".join(f"{a}<|im_end|>\n" for a in assistant)
    assert "Here is the response" not in text and "What's the MRN" not in text
    # a window too short to reach the first answer leaves nothing to learn
    assert sft.encode(tokenizer, example["messages"], 20) is None


def test_loss_decreases_and_the_run_is_recorded(trained: sft.Result) -> None:
    metrics = trained.metrics
    assert metrics["steps"] == STEPS and metrics["device"] == "cpu" and metrics["qlora"] is False
    assert metrics["loss_last"] < 0.5 * metrics["loss_first"]
    saved = json.loads((trained.output_dir / "metrics.json").read_text())
    assert len(saved["loss"]) == STEPS and saved["examples"] == len(PEOPLE)
    assert (trained.output_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (trained.output_dir / "adapter_config.json").is_file()


def test_reloaded_adapter_emits_the_trained_action_for_a_held_out_task(
    trained: sft.Result, base_model: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(trained.output_dir))
    base = AutoModelForCausalLM.from_pretrained(str(base_model))
    before = _first_action(base, tokenizer, HELD_OUT)
    assert not before.startswith(f"GET {API}Patient?")  # the untrained model chats instead
    tuned = PeftModel.from_pretrained(base, str(trained.output_dir))
    after = _first_action(tuned, tokenizer, HELD_OUT)
    assert after.startswith(f"GET {API}Patient?name="), after
    assert "Sutton" in after, after


def test_merge_produces_a_loadable_checkpoint(
    trained: sft.Result, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge.run(trained.output_dir, tmp_path_factory.mktemp("merged") / "m", dtype="float32")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert _first_action(model, tokenizer, HELD_OUT).startswith(f"GET {API}Patient?name=")
