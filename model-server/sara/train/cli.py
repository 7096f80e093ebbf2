"""``sara train``: graded trajectories → SFT data → LoRA adapter → merged checkpoint (or a Job).

    sara train export RUN_DIR... --out train.jsonl (--eval-set PATH... | --no-leakage-guard)
    sara train sft --config train.yaml
    sara train merge ADAPTER_DIR --out MERGED_DIR
    sara train job --config train.yaml --image IMAGE --dataset-pvc C --output-pvc C --cache-pvc C

Module level stays light: torch, transformers, peft and trl (the ``train`` extra) are imported
inside ``sft`` and ``merge`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from sara.common.errors import UserError

# transformers 5 renamed gradient checkpointing; TRL and PEFT still call the old names
_RENAMED = r"`(is_)?gradient_checkpointing` is deprecated"

app = typer.Typer(
    help="Fine-tune on good trajectories: export SFT data, LoRA/QLoRA training, merge, GPU Job.",
    no_args_is_help=True,
)


@app.command("export")
def export_(
    runs: list[Path] = typer.Argument(..., help="Bench run folders (their trajectories.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Write the chat-format examples (JSONL) here."),
    eval_set: list[str] = typer.Option(
        [],
        "--eval-set",
        help="Task file (path or URL) the model will be evaluated on; its tasks are refused "
        "(by id, and by instruction + patient). Repeatable. Required unless --no-leakage-guard.",
    ),
    no_leakage_guard: bool = typer.Option(
        False, "--no-leakage-guard", help="Export without checking against an evaluation set."
    ),
    task_types: str = typer.Option(None, "--task-types", help="Only these types, e.g. 1,4,7."),
    include_incorrect: bool = typer.Option(
        False, "--include-incorrect", help="Also export trajectories the grader marked wrong."
    ),
    system: str = typer.Option(None, "--system", help="A system message to put first."),
) -> None:
    """Graded runs → chat-format SFT JSONL: correct trajectories only, leakage-guarded."""
    from sara.bench import results
    from sara.bench import tasks as task_sets
    from sara.train import export

    if bool(eval_set) == no_leakage_guard:
        raise UserError(
            "name the evaluation set with --eval-set PATH (repeatable), or skip the leakage "
            "guard explicitly with --no-leakage-guard — one of the two"
        )
    guard = None
    if eval_set:
        guard = export.Guard.of(t for source in eval_set for t in task_sets.load(source))
    records: list[dict[str, Any]] = []
    for folder in runs:
        path = folder / results.TRAJECTORIES
        if not path.is_file():
            raise UserError(f"{folder} is not a bench run folder (no {results.TRAJECTORIES})")
        records.extend(results.read_jsonl(path))
    types = task_sets.parse_types(task_types)
    examples, tally = export.examples(
        records,
        guard=guard,
        task_types=frozenset(types) if types else None,
        include_incorrect=include_incorrect,
        system=system,
    )
    if not examples:
        raise UserError(f"nothing to export: {tally.line()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example, ensure_ascii=False) + "\n")
    typer.echo(f"{tally.line()}; written to {out}")


@app.command("sft")
def sft(
    config: Path = typer.Option(..., "--config", help="train.yaml (see docs/research.md)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """LoRA supervised fine-tuning (QLoRA 4-bit NF4 on CUDA); writes adapter + metrics + curve."""
    import warnings

    from sara.train import config as train_config
    from sara.train import sft as trainer

    warnings.filterwarnings("ignore", message=_RENAMED, category=FutureWarning)
    result = trainer.run(train_config.load(config), progress=progress)
    m = result.metrics
    loss = (
        f"loss {m['loss_first']:.4f} -> {m['loss_last']:.4f}"
        if m["loss_first"] is not None
        else "no loss logged"
    )
    typer.echo(
        f"{m['examples']} examples, {m['steps']} steps on {m['device']}"
        f"{' (QLoRA 4-bit)' if m['qlora'] else ''}: {loss} in {m['seconds']:.0f} s; "
        f"adapter, metrics.json and loss.png in {result.output_dir}"
    )


@app.command("merge")
def merge(
    adapter: Path = typer.Argument(..., help="The adapter folder `sara train sft` wrote."),
    out: Path = typer.Option(..., "--out", help="Write the merged checkpoint here."),
    base_model: str = typer.Option(
        None, "--base-model", help="Base model [default: the one the adapter was trained on]."
    ),
    gguf_file: str = typer.Option(None, "--gguf-file", help="With --base-model: a GGUF in it."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="float32 | bfloat16 | float16."),
) -> None:
    """Fold the adapter into its base model: a checkpoint vLLM serves (`sara model serve`)."""
    import warnings

    from sara.train import merge as merger

    warnings.filterwarnings("ignore", message=_RENAMED, category=FutureWarning)
    if gguf_file is not None and base_model is None:
        raise UserError("--gguf-file goes with --base-model")
    merger.run(adapter, out, base_model=base_model, gguf_file=gguf_file, dtype=dtype)
    typer.echo(f"merged checkpoint in {out}")


@app.command("job")
def job(
    config: Path = typer.Option(..., "--config", help="train.yaml of the run."),
    image: str = typer.Option(
        "ghcr.io/sara-clinical/sara-train:0.1.0",
        "--image",
        help="An image with Sara, its `train` extra, CUDA torch and bitsandbytes.",
    ),
    dataset_pvc: str = typer.Option(..., "--dataset-pvc", help="PVC holding the dataset JSONL."),
    output_pvc: str = typer.Option(..., "--output-pvc", help="PVC the adapter is written to."),
    cache_pvc: str = typer.Option(..., "--cache-pvc", help="PVC for HF_HOME (base weights)."),
    name: str = typer.Option("sara-train", "--name", help="Job name."),
    namespace: str = typer.Option(None, "--namespace", help="Namespace of the Job."),
    gpus: int = typer.Option(1, "--gpus", min=1, max=16),
    gpu_resource: str = typer.Option("nvidia.com/gpu", "--gpu-resource"),
    memory: str = typer.Option(None, "--memory", help="Memory request and limit, e.g. 32Gi."),
) -> None:
    """Print the GPU training run as Kubernetes manifests (ConfigMap + Job) for kubectl apply."""
    import yaml

    from sara.train import config as train_config
    from sara.train import job as builders

    spec = builders.JobSpec(
        name=name,
        image=image,
        dataset_pvc=dataset_pvc,
        output_pvc=output_pvc,
        cache_pvc=cache_pvc,
        namespace=namespace,
        gpus=gpus,
        gpu_resource=gpu_resource,
        memory=memory,
    )
    docs = builders.manifests(spec, train_config.load(config))
    typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
