"""Fixtures of the monitoring tests: Debian's Prometheus and promtool, the chart's rendered rules.

``prometheus`` and ``promtool`` come from ``SARA_PROMETHEUS_BIN`` (a directory holding both) or
PATH; ``make test`` installs Debian's ``prometheus`` package where it can
(scripts/install-prometheus.sh). Without them the tests that need them skip on a laptop and fail
under CI=true, so CI cannot pass without running them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from promsupport import need_tool, rule_spec


@pytest.fixture(scope="session")
def promtool() -> str:
    return need_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return need_tool("prometheus")


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="session")
def rules(helm_home: Path) -> dict[str, Any]:
    """The chart's alert rules (the PrometheusRule's spec) with the default values."""
    return rule_spec(helm_home)
