#!/usr/bin/env bash
# Installs what pivot needs on a fresh Debian machine (C libraries from Debian packages) and builds the
# release binary. Safe to run again: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

# chromium: the headless browser the web editor's test drives (Tests/PivotServeTests/BrowserTests.swift).
packages=(libopenblas-dev libdnnl-dev libpng-dev libtiff-dev libjpeg-dev libwebp-dev libheif-dev liblcms2-dev chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != "--no-build" ]; then
    swift build -c release --product pivot 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2 || true
    test -x .build/release/pivot
fi
