#!/usr/bin/env bash
# Fuzz every reader of files made by strangers with libFuzzer + AddressSanitizer (Fuzz/, docs/RELIABILITY.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # each target SECONDS (default 60); all targets by default
#   scripts/fuzz.sh --sanitized-tests         # the C shims and image/format tests under ASan and UBSan
#
# Seeds come from Fuzz/corpus/<target>/ (scripts/fixtures/make_fuzz_corpus.py); the growing corpus lives in
# $PIVOT_FUZZ_WORK (default /tmp/pivot-fuzz), so the repository only keeps the seeds. A crash, leak, timeout
# (10 s) or allocation over 2 GB leaves its input in $PIVOT_FUZZ_WORK/findings/<target>/ and makes the exit
# status non-zero; each one found becomes a regression test (Tests/PivotModelsTests/FuzzRegressionTests.swift
# replays Fuzz/regressions/<target>/). A results table (executions, seconds, corpus, findings per target) is
# printed and written to $PIVOT_FUZZ_WORK/results.md and results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SWIFT=${SWIFT:-swift}
command -v "$SWIFT" > /dev/null || SWIFT=/opt/swift/usr/bin/swift
WORK=${PIVOT_FUZZ_WORK:-/tmp/pivot-fuzz}
BUILD=${PIVOT_FUZZ_BUILD:-$WORK/build}

if [[ "${1:-}" == "--sanitized-tests" ]]; then
    # The image codecs' C shim and the format readers, every test once under each sanitizer. LeakSanitizer is
    # off: XCTest and Foundation leak their own test-run objects on every run (nothing of pivot's was listed).
    # UBSan (the C targets: swiftc has none for Swift on Linux) reports and carries on, so its "runtime error"
    # lines are what fails the run.
    status=0
    for sanitizer in address undefined; do
        echo "== swift test --sanitize $sanitizer (PivotImageTests, PivotFormatsTests)"
        log="$WORK/tests-$sanitizer.log"
        mkdir -p "$WORK"
        set +e
        if [[ $sanitizer == address ]]; then
            flags=(--sanitize address)
        else
            # swiftc has no UBSan for Swift on Linux (Swift traps on overflow itself): the C targets are compiled
            # and the tests linked with clang's -fsanitize=undefined.
            flags=(-Xcc -fsanitize=undefined -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined)
        fi
        ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-} "$SWIFT" test "${flags[@]}" --scratch-path "$WORK/tests-$sanitizer" \
            --filter 'PivotImageTests|PivotFormatsTests' > "$log" 2>&1
        code=$?
        set -e
        grep -E "Executed [0-9]+ tests?, with" "$log" | tail -n 1
        if grep -qE "runtime error|ERROR: AddressSanitizer" "$log"; then
            grep -E "runtime error|ERROR: AddressSanitizer" "$log" | head -n 5
            code=1
        fi
        echo "$sanitizer: exit $code (log: $log)"
        [[ $code -eq 0 ]] || status=1
    done
    exit $status
fi

SECONDS_EACH=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECONDS_EACH=$1; shift; fi

echo "== building the fuzz targets (libFuzzer + AddressSanitizer) into $BUILD"
# SwiftPM 6.3 passes -sanitize=fuzzer to the module job only, so the Swift code's coverage is asked for
# explicitly (without it libFuzzer sees only the C shims' edges and fuzzes blind).
mkdir -p "$WORK"
if ! (cd Fuzz && "$SWIFT" build --sanitize fuzzer --sanitize address --product PivotFuzz --scratch-path "$BUILD" \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp > "$WORK/build.log" 2>&1); then
    tail -n 30 "$WORK/build.log" >&2
    echo "fuzz build failed (full log: $WORK/build.log)" >&2
    exit 1
fi
tail -n 1 "$WORK/build.log"
BIN="$BUILD/debug/PivotFuzz"
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then mapfile -t TARGETS < <(PIVOT_FUZZ_TARGET=list "$BIN"); fi

CPU="$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed "s/^ *//") ($(nproc) cores$(grep -qw avx512f /proc/cpuinfo && echo ", AVX-512")$(grep -qw avx512_bf16 /proc/cpuinfo && echo ", AVX512_BF16"))"
echo "== ${#TARGETS[@]} targets, ${SECONDS_EACH} s each, on $CPU"
mkdir -p "$WORK"
json="["
table="| target | executions | seconds | exec/s | seeds | corpus at end | findings |\n|---|---|---|---|---|---|---|\n"
failed=0
for target in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$target"
    findings="$WORK/findings/$target"
    mkdir -p "$corpus" "$findings"
    seeds=$(find "Fuzz/corpus/$target" -type f | wc -l)
    log="$WORK/$target.log"
    set +e
    # Leak checking is off: Foundation is not built with the sanitizer and LeakSanitizer reports the buffers
    # behind its Data (FileManager.contents) as leaked; use-after-free, overflows and OOM stay on.
    ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-} PIVOT_FUZZ_TARGET=$target PIVOT_FUZZ_SCRATCH=$WORK/scratch "$BIN" "$corpus" "Fuzz/corpus/$target" \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$findings/" > "$log" 2>&1
    status=$?
    set -e
    # A run that stopped at a finding prints no "Done" line: the greps may find nothing (not an error).
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -n 1 || true)
    runs=${runs:-0}
    took=${took:-$SECONDS_EACH}
    size=$(find "$corpus" -type f | wc -l)
    found=$(find "$findings" -type f | wc -l)
    rate=$((runs / (took > 0 ? took : 1)))
    if [[ $status -ne 0 || $found -ne 0 ]]; then failed=1; fi
    echo "$target: $runs executions in $took s ($rate/s), corpus $size, findings $found (exit $status)"
    table+="| $target | $runs | $took | $rate | $seeds | $size | $found |\n"
    json+="{\"target\":\"$target\",\"executions\":$runs,\"seconds\":$took,\"seeds\":$seeds,\"corpus\":$size,\"findings\":$found,\"exit\":$status},"
done
json="${json%,}]"
printf "CPU: %s; %s s per target\n\n%b" "$CPU" "$SECONDS_EACH" "$table" | tee "$WORK/results.md"
echo "{\"cpu\":\"$CPU\",\"seconds_each\":$SECONDS_EACH,\"targets\":$json}" > "$WORK/results.json"
if [[ $failed -ne 0 ]]; then
    echo "findings: see $WORK/findings/ (make each a regression test in Fuzz/regressions/<target>/)" >&2
    exit 1
fi
