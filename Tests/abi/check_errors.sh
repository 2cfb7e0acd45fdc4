#!/usr/bin/env bash
# docs/ERRORS.md agrees with the header's one list of statuses (ADAMCORE_STATUS_MAP): every status has exactly one
# row of the table, "| `ADAMCORE_<name>` (<value>) | ...", with the list's value, and the table has no other row.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
listed=$(sed -n 's/^ *XX(\([A-Z_0-9]*\), \(-\{0,1\}[0-9]*\), ".*/ADAMCORE_\1 \2/p' "$top/include/adamcore.h" | grep -v '^ADAMCORE_OK ' | sort)
[ "$(printf '%s\n' "$listed" | wc -l)" -gt 30 ] || { echo "check_errors: FAIL: too few statuses parsed from the header"; exit 1; }
documented=$(sed -n 's/^| `\(ADAMCORE_[A-Z_0-9]*\)` (\([−0-9]*\)[;)].*/\1 \2/p' "$top/docs/ERRORS.md" | sed 's/−/-/' | sort)
if [ "$listed" != "$documented" ]; then
  echo "check_errors: FAIL: docs/ERRORS.md's table and ADAMCORE_STATUS_MAP differ (< header, > docs):"
  diff <(printf '%s\n' "$listed") <(printf '%s\n' "$documented") || true
  exit 1
fi
echo "check_errors: ok: $(printf '%s\n' "$listed" | wc -l) statuses, each documented once with its value"
