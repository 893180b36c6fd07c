#!/usr/bin/env bash
# Formats the Swift sources with the toolchain's swift-format and the repository's .swift-format.
#
#   scripts/format.sh          rewrite Sources/, Tests/ and Package.swift in place
#   scripts/format.sh --lint   change nothing; exit 1 if a file is not formatted or a lint rule fails (CI runs this)
#
# The configuration keeps the project's style: 4-space indents, lines up to 150 columns, one blank line at
# most. Rules left off, and why: OneVariableDeclarationPerLine (the kernels declare related scalars together,
# `let sa = …, sb = …`, as the references write them), GroupNumericLiterals (constants are written as the
# references print them), ReplaceForEachWithForLoop and OnlyOneTrailingClosureArgument (idioms the code uses on
# purpose), UseSynthesizedInitializer, UseExplicitNilCheckInConditions, UseLetInEveryBoundCaseVariable and
# NoAssignmentInExpressions (style only), AlwaysUseLowerCamelCase and TypeNamesShouldBeCapitalized (names follow
# the file formats and papers: `F16`, `BF16Buffer`), DontRepeatTypeInStaticProperties (`PrecisionPlan.fp32`
# reads better), FileScopedDeclarationPrivacy and NoAccessLevelOnExtensionDeclaration (access is written where
# it is decided), OrderedImports (imports are grouped by layer), NoBlockComments, AvoidRetroactiveConformances
# (the CLI makes library enums ExpressibleByArgument on purpose: the library never imports the argument parser)
# and AmbiguousTrailingClosureOverload (the vjp overloads differ by the closure's type).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
paths=(Sources Tests Package.swift Fuzz/Sources Fuzz/Package.swift)
if [ "${1:-}" = "--lint" ]; then
    # lint --strict fails on findings of the lint rules; the diff catches layout the formatter would change.
    swift format lint --strict --parallel --recursive "${paths[@]}"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    status=0
    while IFS= read -r -d '' f; do
        swift format format "$f" > "$tmp/out.swift"
        if ! cmp -s "$f" "$tmp/out.swift"; then
            echo "not formatted: $f (run scripts/format.sh)"
            status=1
        fi
    done < <(find "${paths[@]}" -type f -name '*.swift' -print0)  # symlinks (Tests' FuzzTargets.swift) are checked at their target
    exit $status
fi
swift format format --in-place --parallel --recursive "${paths[@]}"
