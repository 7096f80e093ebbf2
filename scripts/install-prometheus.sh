#!/usr/bin/env bash
# Debian's Prometheus server and promtool for the monitoring tests (tests/monitoring/): promtool
# checks and unit-tests the chart's alert rules, and a throw-away server on 127.0.0.1 scrapes a
# real agent and evaluates every dashboard and rule expression. Found as the tests find them:
# SARA_PROMETHEUS_BIN (a directory holding `prometheus` and `promtool`), or both on PATH.
# Installs only where it can: as root with apt-get (CI, the project's machines). Elsewhere it says
# what to install; those tests then skip (and fail under CI=true).
#
# The package's own service is never used (the tests start their own server on a free port with
# a temporary configuration and data directory). In containers without an init system the
# package cannot start it anyway; where it can, the install is told not to (policy-rc.d).
set -euo pipefail
has_both() { [ -x "$1/prometheus" ] && [ -x "$1/promtool" ]; }
if [ -n "${SARA_PROMETHEUS_BIN:-}" ]; then
  has_both "$SARA_PROMETHEUS_BIN" && exit 0
  echo "note: SARA_PROMETHEUS_BIN=$SARA_PROMETHEUS_BIN lacks prometheus or promtool" >&2
fi
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's prometheus for the monitoring tests" >&2
  # Keep the package's post-install from starting its system service (exit 101: "not allowed").
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
else
  echo "note: no prometheus/promtool found; install your distribution's prometheus (or set" \
       "SARA_PROMETHEUS_BIN to a directory holding both) to run the monitoring tests" >&2
fi
