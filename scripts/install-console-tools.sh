#!/usr/bin/env bash
# axe-core for the console's browser test (tests/console/test_console_browser.py injects
# axe.min.js into each page): the npm package, pinned, installed into .tools/npm (gitignored).
# Needs node's npm and the npm registry; without npm it says so, and the accessibility checks
# then skip on a laptop and fail under CI=true. The console itself has no npm dependencies.
set -euo pipefail
AXE_VERSION="${SARA_AXE_VERSION:-4.14.1}"
DEST="${SARA_TOOLS:-.tools}/npm"
AXE="$DEST/node_modules/axe-core"
if [ -f "$AXE/axe.min.js" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE/package.json"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "note: no npm found; install Node.js 20+ to run the console's accessibility checks" >&2
  exit 0
fi
mkdir -p "$DEST"
echo "installing axe-core $AXE_VERSION into $DEST for the console's accessibility test" >&2
npm install --prefix "$DEST" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
  "axe-core@$AXE_VERSION" >&2
