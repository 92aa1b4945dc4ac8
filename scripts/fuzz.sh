#!/usr/bin/env bash
# Builds the libFuzzer harness for the protocol decoder and runs it.
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]     (default 120 seconds, 1 job)
#
# The harness (Fuzz/TaskShedProtocolFuzz) is compiled with swiftc together with Sources/TaskShedProtocol, with
# -sanitize=fuzzer,address; it is not a SwiftPM target because it cannot link without the fuzzer runtime.
# Corpus: fuzz-out/corpus (seeded from proto-spec/vectors). Crashes: fuzz-out/crashes. Copy a crash input into
# Tests/TaskShedProtocolTests/FuzzCorpus/crashes/ once it is fixed, so the test suite replays it for ever.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-120}"
shift || true

out=fuzz-out
mkdir -p "$out/bin" "$out/corpus" "$out/crashes"

swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name TaskShedProtocolFuzz \
    $(find Sources/TaskShedProtocol -name '*.swift' | sort) Fuzz/TaskShedProtocolFuzz/*.swift \
    -o "$out/bin/protocol-fuzzer"

# Seed the corpus with every golden vector and with all of them concatenated (hex -> binary).
for vector in proto-spec/vectors/*.hex; do
    sed -e 's/#.*//' "$vector" | xxd -r -p > "$out/corpus/vector-$(basename "$vector" .hex)"
done
for vector in proto-spec/vectors/*.hex; do sed -e 's/#.*//' "$vector"; done | xxd -r -p > "$out/corpus/all-vectors"

# The Swift backtracer installs signal handlers that trip AddressSanitizer.
export SWIFT_BACKTRACE=enable=no
exec "$out/bin/protocol-fuzzer" "$out/corpus" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/" "$@"
