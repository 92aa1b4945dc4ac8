#!/usr/bin/env bash
# Builds the DocC documentation of the client library `TaskShed` (the catalog Sources/TaskShed/TaskShed.docc and
# the library's doc comments) with swift-docc-plugin, offline, and fails on any warning: DocC's own (a broken
# symbol link, a parameter documented that does not exist) through --warnings-as-errors, and any other
# "warning:" line of the run (a compiler warning while the symbol graph is built).
#
#   scripts/build-docs.sh [--output DIR] [--scratch-path DIR]
#
#   --output DIR        where TaskShed.doccarchive is written (default: .build/docs)
#   --scratch-path DIR  SwiftPM's build folder for this run (default: .build-docs). It is not .build so that the
#                       script can run while another SwiftPM command holds .build's lock (the test suite runs it).
#
# Open the archive with `docc preview` or Xcode, or serve it after `docc process-archive
# transform-for-static-hosting`. Exit status: 0 built without a warning; 1 the build failed or warned (the
# output says where); 2 bad usage.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
output=$repo/.build/docs
scratch=$repo/.build-docs

usage() { echo "usage: $0 [--output DIR] [--scratch-path DIR]" >&2; exit 2; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --output) [ "$#" -ge 2 ] || usage; output=$2; shift 2 ;;
        --scratch-path) [ "$#" -ge 2 ] || usage; scratch=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage ;;
    esac
done

mkdir -p "$output"
output=$(cd "$output" && pwd)
log=$(mktemp /tmp/taskshed-docs-XXXXXX.log)
trap 'rm -f "$log"' EXIT

cd "$repo"
status=0
swift package --scratch-path "$scratch" --allow-writing-to-directory "$output" \
    generate-documentation --target TaskShed --output-path "$output/TaskShed.doccarchive" \
    --warnings-as-errors 2>&1 | tee "$log" || status=$?

if [ "$status" -ne 0 ]; then
    echo "build-docs: generating the documentation failed (exit $status)" >&2
    exit 1
fi
if grep -q "warning:" "$log"; then
    echo "build-docs: the run printed warnings:" >&2
    grep "warning:" "$log" >&2
    exit 1
fi
echo "build-docs: $output/TaskShed.doccarchive, no warnings"
