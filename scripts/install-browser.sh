#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/common/test_docs_browser.py). Playwright drives
# it by path; `playwright install` (a browser download) is never used.
# Installs only where it can: as root with apt-get (CI, the project's machines). Elsewhere it
# says what to install; the browser test then skips (and fails under CI=true).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${SARA_CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: no chromium found; install your distribution's chromium (or set SARA_CHROMIUM" \
       "to a Chromium binary) to run the browser test" >&2
fi
