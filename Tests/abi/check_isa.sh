#!/usr/bin/env bash
# Proves that code compiled for a higher ISA tier can only be reached through that tier's kernel set:
#   - every function of the library containing an AVX-512 instruction (EVEX-encoded, or an opmask instruction)
#     belongs to the AdamCoreAVX512 module;
#   - every function containing an AVX/AVX2/FMA instruction (VEX-encoded, which covers BMI too) or LZCNT/MOVBE
#     belongs to AdamCoreAVX2 or AdamCoreAVX512.
# The encoding is read from the instruction bytes (after the legacy prefixes: 0x62 opens EVEX in 64-bit mode, 0xC4
# and 0xC5 open VEX), so no mnemonic list can miss one. Specializations carry their module's policy type in their
# names; a merged or leaked one would run such code on a lower tier's path and crash older CPUs with SIGILL.
# (tzcnt is excluded: it is encoded as `rep bsf` and runs as bsf on CPUs without BMI1.)
set -euo pipefail
so=${1:?usage: check_isa.sh libadamcore.so}
[ "$(uname -m)" = x86_64 ] || { echo "check_isa: not x86_64, nothing to check"; exit 0; }
swift_bin=$(command -v swift || true)
# One line per function that uses a tier's instructions: "avx512 NAME" or "avx2 NAME".
hits=$(objdump -d --insn-width=16 "$so" | awk -F'\t' '
  /^[0-9a-f]+ <.*>:$/ { split($0, a, " "); fn = substr(a[2], 2, length(a[2]) - 3); next }
  NF >= 3 {
    n = split($2, b, " "); i = 1
    while (i <= n && b[i] ~ /^(66|67|f2|f3|2e|36|3e|26|64|65|f0)$/) i++
    split($3, m, " "); op = m[1]
    if (b[i] == "62" || op ~ /^k(mov|and|or|xor|xnor|not|test|ortest|shift|unpck|add)/) tier[fn] = "avx512"
    else if ((b[i] == "c4" || b[i] == "c5" || op ~ /^(lzcnt|movbe)$/) && tier[fn] != "avx512") tier[fn] = "avx2"
  }
  END { for (f in tier) print tier[f], f }')
count() { printf '%s\n' "$hits" | grep -c "^$1 " || true; }
demangled() { printf '%s\n' "$hits" | grep "^$1 " | cut -d' ' -f2- | "$swift_bin" demangle; }
avx2=$(count avx2); avx512=$(count avx512)
[ "$avx2" -gt 0 ] || { echo "check_isa: FAIL: no AVX2 code found at all (is the AVX2 kernel set built?)"; exit 1; }
[ "$avx512" -gt 0 ] || { echo "check_isa: FAIL: no AVX-512 code found at all (is the AVX-512 kernel set built?)"; exit 1; }
# A specialization may name its tier's policy only in a mangled argument (closure propagation prints the propagated
# closure mangled: "...AVX5120n5Fused..." for AVX512FusedArithmetic): that names the tier as surely.
in512='AdamCoreAVX512|AVX512[0-9A-Za-z]*Fused'
bad=$( { demangled avx512 | grep -v -E "$in512" || true; demangled avx2 | grep -v -E "AdamCoreAVX2|AVX2[0-9A-Za-z]*Fused|$in512" || true; } )
if [ -n "$bad" ]; then
  echo "check_isa: FAIL: functions outside their tier's module use its instructions:"
  printf '%s\n' "$bad" | head -20
  exit 1
fi
echo "check_isa: ok: $avx2 functions use AVX2-only instructions, all in a module of tier AVX2 or higher;" \
  "$avx512 use AVX-512 instructions, all in AdamCoreAVX512"
