"""``sara bench``: run MedAgentBench (official or synthetic tasks), merge shards, report.

    sara bench --tasks PATH|URL|synthetic --out DIR [--resume] [...]
    sara bench --tasks PATH --models models.yaml --out DIR [--resume]     # one folder per model
    sara bench merge DIR... --out DIR
    sara bench report DIR [--compare published|none]
    sara bench compare RUN_DIR... [--published [DIR]] --out DIR

Module level stays light: the runner, plotting and HTTP clients are imported inside commands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from sara.common.errors import UserError

app = typer.Typer(
    help="MedAgentBench runner: task sets, faithful grader, concurrent runs, reports.",
    invoke_without_command=True,
)

TASKS_FILE = "tasks.json"


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    tasks: str = typer.Option(None, "--tasks", help="Task file path, http(s) URL, or `synthetic`."),
    out: Path = typer.Option(
        None, "--out", help="Output directory (runs.jsonl, summary, report/)."
    ),
    n: int = typer.Option(300, "--n", min=1, help="Synthetic: number of tasks."),
    seed: int = typer.Option(1, "--seed", help="Synthetic: random seed."),
    balanced: bool = typer.Option(False, "--balanced", help="Synthetic: equal branch frequency."),
    fhir_url: str = typer.Option("http://127.0.0.1:8080/fhir/", "--fhir-url"),
    model_url: str = typer.Option("http://127.0.0.1:8001/v1", "--model-url"),
    model: str = typer.Option("sara-reference-policy", "--model"),
    models_file: Path = typer.Option(
        None, "--models", help="Models file (YAML/JSON): run every model, one folder each."
    ),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Env var holding the model key."),
    concurrency: int = typer.Option(16, "--concurrency", min=1),
    max_rounds: int = typer.Option(8, "--max-rounds", min=1),
    protocol: str = typer.Option(
        "medagentbench", "--protocol", help="medagentbench | sara-leaderboard | compact | sara"
    ),
    prompt: str = typer.Option(
        None, "--prompt", help="Prompt profile; default: the protocol's own (see docs/bench.md)."
    ),
    functions: Path = typer.Option(None, "--functions", help="Function list JSON (funcs_v1.json)."),
    task_types: str = typer.Option(None, "--task-types", help="Only these types, e.g. 1,4,7."),
    shard: str = typer.Option(None, "--shard", help="Run slice I of N (0-based), e.g. 0/4."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run in --out."),
    retry_errors: bool = typer.Option(
        False, "--retry-errors", help="With --resume: run tasks that ended in `task error` again."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    report_too: bool = typer.Option(True, "--report/--no-report", help="Write report/ at the end."),
) -> None:
    """Run a benchmark: every task once (pass@1), graded, appended to --out as it finishes."""
    if ctx.invoked_subcommand is not None:
        return
    if tasks is None or out is None:
        raise UserError("pass --tasks PATH|URL|synthetic and --out DIR (see `sara bench --help`)")
    if models_file is not None and tasks == "synthetic":
        raise UserError("--models runs a task file; generate synthetic tasks with one run first")
    if retry_errors and not resume:
        raise UserError("--retry-errors goes with --resume")
    from sara.bench import protocols

    protocols.get(protocol)
    if functions is not None and not functions.is_file():
        raise UserError(f"--functions {functions} does not exist")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise UserError(f"--api-key-env {api_key_env}: that environment variable is empty")

    import asyncio

    from sara.bench import runner
    from sara.bench import tasks as task_sets
    from sara.common import logs

    logs.configure("WARNING")
    types = task_sets.parse_types(task_types)
    slice_ = task_sets.parse_shard(shard)
    task_list = _task_list(
        tasks, out, resume, fhir_url, n=n, seed=seed, balanced=balanced, types=types
    )
    selected = task_sets.select(task_list, types, slice_)
    if models_file is not None:
        from sara.bench import fleet

        specs = fleet.load(models_file)
    options = runner.RunOptions(
        fhir_url=fhir_url,
        model_url=model_url,
        model=model,
        out=out,
        api_key=api_key,
        concurrency=concurrency,
        max_rounds=max_rounds,
        protocol=protocol,
        prompt=prompt,
        functions=functions,
        resume=resume,
        retry_errors=retry_errors,
        progress=progress,
    )
    if models_file is not None:
        bases = [fleet.options_for(spec, options, out) for spec in specs]
        _run_models(selected, bases, report_too)
        return
    result = asyncio.run(runner.run(selected, options))
    summary = result.summary
    if report_too and summary["total"]:
        _report(out, compare=True)
    typer.echo(
        f"{summary['correct']}/{summary['total']} correct ({summary['accuracy']:.1f} %, faithful); "
        f"strict {summary['strict_accuracy']:.1f} %; {result.recorded} graded now, "
        f"{result.skipped} before; results in {out}"
    )
    if result.unrecorded:
        typer.echo(
            f"{result.unrecorded} tasks met an unreachable FHIR server and were not recorded: "
            "run again with --resume",
            err=True,
        )
        raise typer.Exit(1)


def _run_models(selected: list[Any], runs: list[Any], report_too: bool) -> None:
    """Every model of a models file at once, each into its own folder; one line per model."""
    import asyncio

    from sara.bench import runner

    async def all_models() -> list[Any]:
        return await asyncio.gather(*(runner.run(selected, o) for o in runs))

    outcomes = asyncio.run(all_models())
    left = 0
    for opts, result in zip(runs, outcomes, strict=True):
        summary = result.summary
        if report_too and summary["total"]:
            _report(opts.out, compare=True)
        left += result.unrecorded
        typer.echo(
            f"{opts.model}: {summary['correct']}/{summary['total']} correct "
            f"({summary['accuracy']:.1f} %); {summary['prompt_tokens_per_task']:.0f} prompt "
            f"tokens/task; {result.unrecorded} left for --resume; results in {opts.out}"
        )
    typer.echo(f"compare them: sara bench compare {' '.join(str(o.out) for o in runs)} --out DIR")
    if left:
        raise typer.Exit(1)


def _task_list(
    source: str,
    out: Path,
    resume: bool,
    fhir_url: str,
    *,
    n: int,
    seed: int,
    balanced: bool,
    types: set[int] | None,
) -> list[dict[str, Any]]:
    from sara.bench import tasks as task_sets

    if source != "synthetic":
        return task_sets.load(source)
    saved = out / TASKS_FILE
    if resume and saved.exists():  # the same tasks as the interrupted run, whatever the chart now
        return task_sets.validate(json.loads(saved.read_text("utf-8")), str(saved))
    from sara.bench import results

    runs = out / results.RUNS
    if not resume and runs.exists() and runs.stat().st_size > 0:
        # refuse before a new tasks.json replaces the one those results belong to
        raise UserError(f"{out} already holds results: pass --resume, or choose another --out")
    import asyncio

    generated = asyncio.run(_generate(fhir_url, n=n, seed=seed, balanced=balanced, types=types))
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(generated, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return generated


async def _generate(
    fhir_url: str, *, n: int, seed: int, balanced: bool, types: set[int] | None
) -> list[dict[str, Any]]:
    import httpx

    from sara.bench import groundtruth, synthetic
    from sara.bench.errors import GroundTruthError

    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        try:
            patients, observations = await groundtruth.chart(
                groundtruth.GroundTruth(client, fhir_url)
            )
        except GroundTruthError as exc:
            raise UserError(f"cannot read the chart from {fhir_url}: {exc}") from exc
    try:
        found = synthetic.charts(patients, observations)
        return synthetic.generate(found, n=n, seed=seed, balanced=balanced, types=types)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


@app.command()
def merge(
    dirs: list[Path] = typer.Argument(..., help="Shard output directories."),
    out: Path = typer.Option(..., "--out", help="Directory for the combined results."),
    report_too: bool = typer.Option(True, "--report/--no-report"),
) -> None:
    """Combine shard directories into one (each task exactly once), with summary and report."""
    from sara.bench import results, summary

    records = results.merge(dirs, out)
    shards = [summary.read(d) or {} for d in dirs]
    merged = summary.summarize(
        records,
        model=str(next((s["model"] for s in shards if "model" in s), "unknown")),
        # shards run side by side: the benchmark took as long as its slowest shard
        elapsed_seconds=max(float(s.get("elapsed_seconds", 0.0)) for s in shards),
        expected=sum(int(s.get("total", 0)) + int(s.get("ungraded", 0)) for s in shards) or None,
        protocol=next((str(s["protocol"]) for s in shards if "protocol" in s), None),
        label=next((str(s["label"]) for s in shards if "label" in s), None),
        size_b=next((float(s["size_b"]) for s in shards if "size_b" in s), None),
    )
    summary.write(out, merged)
    if report_too and merged["total"]:
        _report(out, compare=True)
    typer.echo(
        f"{merged['correct']}/{merged['total']} correct ({merged['accuracy']:.1f} %) → {out}"
    )


@app.command()
def report(
    directory: Path = typer.Argument(..., help="An output directory of `sara bench`."),
    compare: str = typer.Option("published", "--compare", help="published | none"),
) -> None:
    """(Re)build report/ (CSV, PNG plots, report.md) from an output directory."""
    if compare not in ("published", "none"):
        raise UserError("--compare is published or none")
    path = _report(directory, compare=compare == "published")
    typer.echo(str(path))


def _report(directory: Path, *, compare: bool) -> Path:
    from sara.bench import report as reporting
    from sara.bench import results, summary

    records = results.load(directory)
    if not records:
        raise UserError(f"{directory} holds no graded tasks")
    found = summary.read(directory)
    if found is None:
        raise UserError(f"{directory} has no summary.json")
    return reporting.build(directory, found, records, compare=compare)


@app.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def compare(
    args: list[str] = typer.Argument(
        None,
        help="Run folders (Sara's or published), then optionally --published [DIR].",
        metavar="RUN_DIR... [--published [DIR]]",
    ),
    out: Path = typer.Option(..., "--out", help="Directory for the CSV tables, plots, report."),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
) -> None:
    """Many runs, one table: the published analysis CSVs, plots, confidence intervals and
    paired tests. ``--published DIR`` adds every run folder under DIR (the published runs);
    a bare ``--published`` adds the 15 published models from Sara's packaged figures."""
    from sara.bench import compare as comparing
    from sara.bench import runs as run_data

    folders, published_dir, packaged = _compare_args(list(args or []))
    loaded = [run_data.load(f) for f in folders]
    mine = {id(r) for r in loaded}
    if published_dir is not None:
        loaded += [run_data.load(f) for f in run_data.published_folders(published_dir)]
    if packaged:
        loaded += run_data.packaged()
    if not loaded:
        raise UserError("nothing to compare: pass run folders and/or --published [DIR]")
    found = comparing.tables(loaded)
    written = comparing.write(found, out)
    if plots:
        from sara.bench import compare_plots

        written += compare_plots.draw(found, out, mine)
    from sara.bench import compare_report

    written.append(compare_report.write(found, out, mine))
    typer.echo(comparing.table_text(found))
    picked = comparing.highlights(found, mine)
    if picked:
        typer.echo("\npaired tests (exact McNemar on the tasks both runs have):")
        for p in picked:
            typer.echo(
                f"  {p.a} vs {p.b}: {p.a_only} vs {p.b_only} discordant of {p.n}, "
                f"p = {p.p_value:.3g} -> {p.verdict()}"
            )
    typer.echo(f"\n{len(written)} files in {out}")


def _compare_args(args: list[str]) -> tuple[list[Path], Path | None, bool]:
    """RUN_DIR... and ``--published [DIR]`` / ``--published=DIR`` (a bare flag: packaged)."""
    folders: list[Path] = []
    published_dir: Path | None = None
    packaged = False
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--published" or word.startswith("--published="):
            value = word.partition("=")[2] if "=" in word else None
            if value is None and i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                value = args[i]
            if value:
                published_dir = Path(value)
            else:
                packaged = True
        elif word.startswith("-"):
            raise UserError(f"sara bench compare: unknown option {word}")
        else:
            folders.append(Path(word))
        i += 1
    return folders, published_dir, packaged
