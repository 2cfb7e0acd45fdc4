#!/usr/bin/env bash
# The Swift product's public surface is what a Swift user needs (issue 11): kernels, streams, kernel sets, the
# worker pool and the statistics sinks are `package`. Extracts the public declarations of module AdamCore (its
# symbol graph, synthesized conformance members left out) and compares them with Tests/abi/swift_public_api.txt,
# so that any change to the public API is a reviewed change of that file.
# Usage: check_swift_api.sh MODULES_DIR [--update]
set -euo pipefail
modules=${1:?swift modules dir}
top=$(cd "$(dirname "$0")/../.." && pwd)
expected="$top/Tests/abi/swift_public_api.txt"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

swift-symbolgraph-extract -module-name AdamCore -I "$modules" -I "$top/Sources/CAdamCore" \
  -target "$(uname -m)-unknown-linux-gnu" -minimum-access-level public -output-dir "$work"
python3 - "$work" > "$work/actual.txt" <<'PY'
import glob, json, sys
lines = set()
for path in glob.glob(sys.argv[1] + "/*.symbols.json"):
    for s in json.load(open(path))["symbols"]:
        if "::SYNTHESIZED::" in s["identifier"]["precise"]:
            continue
        declaration = "".join(f["spelling"] for f in s["declarationFragments"])
        lines.add(".".join(s["pathComponents"]) + " | " + " ".join(declaration.split()))
print("\n".join(sorted(lines)))
PY
if [ "${2:-}" = --update ]; then cp "$work/actual.txt" "$expected"; echo "check_swift_api: wrote $expected"; exit 0; fi
for internal in KernelSet Streams WorkerPool KernelStats StatsAccumulator ValidConfig adamKernel MixedStreams; do
  if grep -qE "(^|[^A-Za-z])$internal([^A-Za-z]|$)" "$work/actual.txt"; then
    echo "check_swift_api: FAIL: $internal is public"; exit 1
  fi
done
if ! diff -u "$expected" "$work/actual.txt"; then
  echo "check_swift_api: FAIL: the public Swift API differs from Tests/abi/swift_public_api.txt (above);" \
       "if the change is meant, run Tests/abi/check_swift_api.sh MODULES --update and commit the file"
  exit 1
fi
echo "check_swift_api: ok: $(wc -l < "$expected") public declarations, as listed"
