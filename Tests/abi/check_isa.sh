#!/usr/bin/env bash
# Proves that code compiled for AVX2 can only be reached through the AVX2 kernel set: every function in the
# library that contains an AVX/VEX or BMI/LZCNT/MOVBE instruction must belong to the AdamCoreAVX2 module (its
# specializations carry that module's policy type in their names). A merged or leaked specialization would run
# AVX2 code on the baseline path and crash older CPUs with SIGILL.
# (tzcnt is excluded: it is encoded as `rep bsf` and runs as bsf on CPUs without BMI1.)
set -euo pipefail
so=${1:?usage: check_isa.sh libadamcore.so}
[ "$(uname -m)" = x86_64 ] || { echo "check_isa: not x86_64, nothing to check"; exit 0; }
swift_bin=$(command -v swift || true)
hits=$(objdump -d --no-show-raw-insn "$so" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = substr($2, 2, length($2) - 3); next }
  $2 ~ /^(v[a-z0-9]+|shlx|shrx|sarx|rorx|andn|bextr|blsi|blsmsk|blsr|bzhi|pdep|pext|lzcnt|movbe|mulx)$/ { n[fn]++ }
  END { for (f in n) print f }')
total=$(printf '%s\n' "$hits" | grep -c . || true)
[ "$total" -gt 0 ] || { echo "check_isa: FAIL: no AVX2 code found at all (is the AVX2 kernel set built?)"; exit 1; }
bad=$(printf '%s\n' "$hits" | "$swift_bin" demangle | grep -v 'AdamCoreAVX2' || true)
if [ -n "$bad" ]; then
  echo "check_isa: FAIL: functions outside AdamCoreAVX2 use AVX2-only instructions:"
  printf '%s\n' "$bad" | head -20
  exit 1
fi
echo "check_isa: ok: $total functions use AVX2-only instructions, all in AdamCoreAVX2"
