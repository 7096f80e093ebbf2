"""Several model endpoints in one ``sara bench`` command: a models file, one run folder each.

The models file (YAML or JSON)::

    models:
      - name: openai/gpt-4o                 # the model id sent to the endpoint (required)
        url: https://api.example/v1          # OpenAI-compatible base URL (required)
        api_key_env: EXAMPLE_API_KEY         # environment variable holding the key (optional)
        headers: {X-Title: sara-bench}       # extra headers on every request (optional)
        concurrency: 4                       # tasks (and requests) in flight there (default 4)
        label: GPT-4o                        # display name in tables (optional)
        folder: openai_gpt-4o                # run folder under --out (default from the name,
                                             # as the published harness names its folders)
        size_b: 200                          # parameters in billions, for the size plot (optional)

Each model runs into ``--out/<folder>`` with its own endpoint transport (headers, concurrency,
retries with 429/``Retry-After`` and 5xx backoff), all models at once; ``--resume`` resumes
every folder. Keys are read from the environment when the command starts, never written
anywhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sara.common.errors import UserError

_KEYS = {"name", "url", "api_key_env", "headers", "concurrency", "label", "folder", "size_b"}
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    url: str
    api_key_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 4
    label: str | None = None
    folder: str = ""
    size_b: float | None = None

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise UserError(f"model {self.name}: environment variable {self.api_key_env} is empty")
        return value


def folder_name(model: str) -> str:
    """The published harness's folder name: ``/`` → ``_``, ``.`` → ``-``."""
    return model.replace("/", "_").replace(".", "-")


def load(path: Path) -> list[ModelSpec]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read --models {path}: {exc.strerror}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"--models {path} does not parse: {exc}") from exc
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise UserError(f"--models {path}: expected a non-empty list under `models:`")
    specs = [_spec(entry, i, path) for i, entry in enumerate(entries, start=1)]
    folders = [s.folder for s in specs]
    if len(set(folders)) != len(folders):
        raise UserError(f"--models {path}: two models share a folder; give each a `folder`")
    return specs


def _spec(entry: Any, number: int, path: Path) -> ModelSpec:
    where = f"--models {path}, model {number}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a mapping")
    unknown = set(entry) - _KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, url = entry.get("name"), entry.get("url")
    if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
        raise UserError(f"{where}: `name` and `url` are required strings")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{where}: url must start with http:// or https://")
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        raise UserError(f"{where}: `headers` must be a mapping")
    concurrency = entry.get("concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise UserError(f"{where}: `concurrency` must be a positive integer")
    folder = str(entry.get("folder") or folder_name(name))
    if not _FOLDER.match(folder):
        raise UserError(f"{where}: folder {folder!r} must be a plain directory name")
    size = entry.get("size_b")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | float)):
        raise UserError(f"{where}: `size_b` must be a number")
    key_env = entry.get("api_key_env")
    return ModelSpec(
        name=name,
        url=url,
        api_key_env=str(key_env) if key_env else None,
        headers={str(k): str(v) for k, v in headers.items()},
        concurrency=concurrency,
        label=str(entry["label"]) if entry.get("label") else None,
        folder=folder,
        size_b=float(size) if size is not None else None,
    )


def options_for(spec: ModelSpec, base: Any, out: Path) -> Any:
    """The run options of one model: ``base`` (a ``runner.RunOptions``) with its endpoint."""
    return replace(
        base,
        model_url=spec.url,
        model=spec.name,
        out=out / spec.folder,
        api_key=spec.api_key(),
        concurrency=spec.concurrency,
        endpoint_concurrency=spec.concurrency,
        extra_headers=dict(spec.headers),
        label=spec.label,
        size_b=spec.size_b,
        progress=False,
    )
