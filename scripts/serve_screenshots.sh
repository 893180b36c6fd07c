#!/usr/bin/env bash
# Screenshots of `pivot serve`'s page for the README: docs/serve-before.png (photo chosen, prompts written,
# one slider per word) and docs/serve-after.png (the edit done, its attention maps and the history strip).
# It runs the headless-Chromium test (Tests/PivotServeTests/BrowserTests.swift) on the demo model with
# PIVOT_SCREENSHOT_DIR set, which also makes it render 20 steps instead of 4. Needs Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
command -v chromium >/dev/null || { echo "serve_screenshots: install chromium first (apt-get install chromium)" >&2; exit 1; }
out="${1:-docs}"
mkdir -p "$out"
PIVOT_SCREENSHOT_DIR="$(cd "$out" && pwd)" swift test --filter BrowserTests.testEditInHeadlessChromium
ls -l "$out/serve-before.png" "$out/serve-after.png"
