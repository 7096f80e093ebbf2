"""``report.md`` of ``sara bench compare``: the table, intervals, paired tests and plots."""

from __future__ import annotations

from pathlib import Path

from sara.bench import compare
from sara.bench.compare import Tables


def markdown(found: Tables, mine: set[int]) -> str:
    board = found.rows["leaderboard.csv"]
    lines = [
        "# MedAgentBench — runs compared",
        "",
        f"{len(board)} runs, pass@1 on the faithful grader. The 95 % intervals are Wilson score "
        "intervals of each run's own tasks; two runs differ only where the paired test says so "
        "(exact McNemar on the tasks both have). Published runs were made under protocol "
        "`sara-leaderboard` (the published harness's own prompt); a run is comparable with them "
        "only under the same protocol.",
        "",
        "| # | model | accuracy % | 95 % CI | correct | protocol | prompt tok/task | source |",
        "| ---: | --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for row in board:
        tokens = row["Prompt Tokens/Task"]
        lines.append(
            f"| {row['Rank']} | {row['Model']} | {row['Accuracy (%)']:.1f} | "
            f"{row['CI95 Low (%)']:.1f}–{row['CI95 High (%)']:.1f} | "
            f"{row['Correct']}/{row['Total']} | {row['Protocol']} | "
            f"{'' if tokens == '' else f'{tokens:.0f}'} | {row['Source']} |"
        )
    notes = [r for r in found.runs if "interleaved" in r.reading or "last line" in r.reading]
    if notes:
        lines += ["", "Per-task records read from resumed published runs:", ""]
        lines += [f"- {found.labels[id(r)]}: {r.reading}" for r in notes]
    picked = compare.highlights(found, mine)
    lines += ["", "## Paired tests", ""]
    if picked:
        lines += [
            "| A | B | common tasks | A only | B only | p | verdict |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        lines += [
            f"| {p.a} | {p.b} | {p.n} | {p.a_only} | {p.b_only} | {p.p_value:.3g} | {p.verdict()} |"
            for p in picked
        ]
    else:
        lines.append("No run given as a folder has per-task records to pair.")
    lines += [
        "",
        f"Every pair: [paired_tests.csv](paired_tests.csv) ({len(found.paired)} pairs).",
        "",
        "![leaderboard](leaderboard.png)",
        "",
        "![per task type](task_heatmap.png)",
        "",
        "![grouped bars](task_bars.png)",
        "",
        "![task difficulty](task_difficulty.png)",
        "",
        "![accuracy vs size](accuracy_vs_size.png)",
        "",
        "Tables: " + ", ".join(f"[{name}]({name})" for name in compare.FILES) + ".",
        "",
    ]
    return "\n".join(lines)


def write(found: Tables, out: Path, mine: set[int]) -> Path:
    path = out / "report.md"
    path.write_text(markdown(found, mine), encoding="utf-8")
    return path
