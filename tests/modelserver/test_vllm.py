"""``sara model serve --engine vllm --profile NAME``: vLLM's command line from a launch profile.

vLLM itself needs an NVIDIA GPU (and is a multi-GB extra), so it is not installed here: the
command line is tested, and the hand-over is run for real against a stand-in ``vllm`` package
that prints what it was started with. tests/contracts/test_vllm_command.py pins the command line
to the operator's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sara.common.errors import UserError
from sara.modelserver import cli, vllm

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "model-server" / "profiles"
SARA = str(Path(sys.executable).with_name("sara"))
runner = CliRunner()


def test_l4_profile_renders_vllms_openai_server_command() -> None:
    profile = vllm.parse(
        {
            "engine": "vllm",
            "uri": "hf://Nadhari/Sara-1.5-4B-it",
            "vllm": {"maxNumSeqs": 64, "dtype": "bfloat16"},
        }
    )
    assert vllm.argv(profile, python="py", host="127.0.0.1", port=8001) == [
        "py", "-m", "vllm.entrypoints.openai.api_server",
        "--host=127.0.0.1", "--port=8001", "--model=Nadhari/Sara-1.5-4B-it",
        "--served-model-name=sara", "--gpu-memory-utilization=0.9", "--dtype=bfloat16",
        "--max-model-len=16384", "--max-num-seqs=64", "--enable-prefix-caching",
    ]  # fmt: skip


def test_a_local_model_path_replaces_the_uri() -> None:
    profile = vllm.parse({"uri": "pvc://weights/sara", "gpu": {"count": 2}})
    args = vllm.args(profile, host="h", port=1, model="/data/sara")
    assert "--model=/data/sara" in args and "--tensor-parallel-size=2" in args
    assert vllm.args(profile, host="h", port=1)[2] == "--model=/models/pvc/sara"


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"engine": "reference", "uri": "hf://a/b"}, "engine"),
        ({"uri": "s3://bucket/model"}, "uri"),
        ({"uri": "hf://a/b", "vllm": {"extraArgs": ["--port=9"]}}, "--port is not allowed"),
        (  # prompts are the patient's chart: never in the pod's log
            {"uri": "hf://a/b", "vllm": {"extraArgs": ["--enable-log-requests"]}},
            "--enable-log-requests is not allowed",
        ),
        ({"uri": "hf://a/b", "vllm": {"dtype": "int4"}}, "dtype"),
        ({"uri": "hf://a/b", "vllm": {"maxModelLenn": 4096}}, "maxModelLenn"),
        ({"engine": "vllm"}, "uri"),
    ],
)
def test_bad_profiles_are_user_errors_naming_the_field(
    fragment: dict[str, object], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        vllm.parse(fragment, "p.yaml")


def test_profiles_are_found_by_name_or_path(tmp_path: Path) -> None:
    assert vllm.profile_path("l4-24gb", [tmp_path, PROFILES]) == PROFILES / "l4-24gb.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("uri: hf://a/b\n")
    assert vllm.profile_path(str(own), [PROFILES]) == own
    with pytest.raises(UserError, match=r"no such launch profile \(known: h100-80gb, l4-24gb"):
        vllm.profile_path("a100", [PROFILES])


def test_print_command_needs_no_vllm() -> None:
    result = runner.invoke(
        cli.app, ["serve", "--engine", "vllm", "--profile", "t4-16gb", "--print-command"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.split()[1:] == [
        "-m", "vllm.entrypoints.openai.api_server", "--host=127.0.0.1", "--port=8001",
        "--model=Nadhari/Sara-1.5-4B-it", "--served-model-name=sara",
        "--gpu-memory-utilization=0.92", "--dtype=float16", "--max-model-len=8192",
        "--max-num-seqs=16", "--enable-prefix-caching", "--enforce-eager",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "vllm"], "needs --profile"),
        (["--engine", "vllm", "--profile", "l4-24gb", "--policy", "reference"], "not --policy"),
        (["--engine", "vllm", "--profile", "l4-24gb", "--latency", "1"], "not --latency"),
        (["--engine", "tgi"], "unknown engine"),
        (["--profile", "l4-24gb"], "go with --engine vllm"),
        (["--engine", "reference", "--gguf", "x.gguf"], "either --engine reference or --gguf"),
    ],
)
def test_flag_mistakes_are_user_errors(argv: list[str], message: str) -> None:
    result = runner.invoke(cli.app, ["serve", *argv])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)


def test_a_pvc_profile_needs_a_local_model(tmp_path: Path) -> None:
    profile = tmp_path / "pvc.yaml"
    profile.write_text("engine: vllm\nuri: pvc://weights/sara\n")
    result = runner.invoke(cli.app, ["serve", "--engine", "vllm", "--profile", str(profile)])
    assert isinstance(result.exception, UserError)
    assert "give --model" in str(result.exception)


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SARA_")}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return env


def test_without_vllm_it_says_how_to_install_it() -> None:
    if subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True).returncode == 0:
        pytest.skip("vLLM is installed here")
    done = subprocess.run(
        [SARA, "model", "serve", "--engine", "vllm", "--profile", "l4-24gb"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert "pip install 'vllm==0.10.1.1'" in done.stderr


def test_it_hands_over_to_vllm_with_the_profiles_command_line(tmp_path: Path) -> None:
    """A stand-in ``vllm`` package (with the pinned version's metadata) records its argv: the
    process ``sara`` replaces itself with is vLLM's OpenAI server with the profile's flags."""
    server = tmp_path / "vllm" / "entrypoints" / "openai"
    server.mkdir(parents=True)
    for folder in (tmp_path / "vllm", tmp_path / "vllm" / "entrypoints", server):
        (folder / "__init__.py").write_text("")
    (server / "api_server.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'stats': os.environ.get('VLLM_NO_USAGE_STATS'),"
        " 'pid': os.getpid()}))\n"
    )
    meta = tmp_path / f"vllm-{vllm.PINNED_VERSION}.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {vllm.PINNED_VERSION}\n"
    )
    done = subprocess.run(
        [SARA, "model", "serve", "--engine", "vllm", "--profile", "h100-80gb", "--port", "8123"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["argv"][:4] == [
        "--host=127.0.0.1",
        "--port=8123",
        "--model=Nadhari/Sara-1.5-4B-it",
        "--served-model-name=sara",
    ]
    assert "--max-num-seqs=256" in seen["argv"] and seen["stats"] == "1"
    assert "vllm.entrypoints.openai.api_server --host=127.0.0.1" in done.stderr  # shown first
    assert "note:" not in done.stderr  # the pinned version: no warning
