#!/usr/bin/env bash
# Builds pivot in release mode with the Swift runtime linked in and installs it:
#
#   scripts/install.sh [PREFIX]              install into PREFIX (default /usr/local)
#   scripts/install.sh --uninstall [PREFIX]  remove what an install put there
#
# Layout: PREFIX/lib/pivot/pivot (the binary), PREFIX/lib/pivot/pivot_*.resources (CLIP's merges, built-in model
# configs: the binary finds them beside itself), and PREFIX/bin/pivot, a link to the binary. The installed
# pivot needs neither the source nor the build folder; it still links the Debian libraries setup.sh installs
# (OpenBLAS, oneDNN, libpng, libjpeg, libtiff).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
uninstall=false
if [ "${1:-}" = "--uninstall" ]; then
    uninstall=true
    shift
fi
prefix="${1:-/usr/local}"
libdir="$prefix/lib/pivot"
if $uninstall; then
    if [ -L "$prefix/bin/pivot" ] && [ "$(readlink "$prefix/bin/pivot")" = "../lib/pivot/pivot" ]; then rm -f "$prefix/bin/pivot"; fi
    rm -rf "$libdir"
    echo "removed pivot from $prefix"
    exit 0
fi
scripts/setup.sh --no-build
flags=(-c release --static-swift-stdlib --scratch-path .build-install)
swift build "${flags[@]}" --product pivot
bin="$(swift build "${flags[@]}" --show-bin-path)"
mkdir -p "$libdir" "$prefix/bin"
tmp="$(mktemp -d "$prefix/lib/.pivot-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp "$bin/pivot" "$tmp/pivot"
for resources in "$bin"/pivot_*.resources; do
    case "$(basename "$resources")" in *Tests.resources) continue ;; esac
    cp -R "$resources" "$tmp/"
done
# Replace the previous install in one step: a running pivot keeps its files.
rm -rf "$libdir.old"
if [ -d "$libdir" ]; then mv "$libdir" "$libdir.old"; fi
mv "$tmp" "$libdir"
trap - EXIT
rm -rf "$libdir.old"
ln -sfn ../lib/pivot/pivot "$prefix/bin/pivot"
echo "installed $prefix/bin/pivot ($("$prefix/bin/pivot" --version))"
