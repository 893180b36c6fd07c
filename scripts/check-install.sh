#!/usr/bin/env bash
# CI's check of scripts/install.sh: installs into a temporary prefix, moves the install's build folder away,
# then runs the installed pivot from another directory on the sample (edit, as the README does) and checks
# that it links no Swift runtime from the toolchain. Exit status 0 when all of that holds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
prefix="$(mktemp -d /tmp/pivot-install-check.XXXXXX)"
hidden="$prefix/hidden-build"
cleanup() {
    if [ -d "$hidden" ]; then mv "$hidden" "$repo/.build-install"; fi
    rm -rf "$prefix"
}
trap cleanup EXIT
scripts/install.sh "$prefix" > "$prefix/install.log" 2>&1 || { cat "$prefix/install.log"; exit 1; }
mv .build-install "$hidden"
ldd "$prefix/lib/pivot/pivot" > "$prefix/ldd.txt"
if grep -q "libswift\|libFoundation" "$prefix/ldd.txt"; then
    echo "check-install: the installed pivot links the Swift runtime dynamically"
    exit 1
fi
out="$prefix/edited.png"
(cd / && "$prefix/bin/pivot" edit "$repo/samples/shapes/red-circle.png" --model "$repo/samples/models/shapes" \
    --source "a red circle on a white background" --target "a blue circle on a white background" \
    --method direct --no-cache --quiet --json -o "$out") > "$prefix/edit.json"
grep -q '"width":64' "$prefix/edit.json" && [ -s "$out" ] || { echo "check-install: the installed pivot did not write the edit"; exit 1; }
echo "check-install: $("$prefix/bin/pivot" --version) installed, ran from / without the build folder"
