#!/usr/bin/env bash
# The library loads where no Swift toolchain is installed: no libswift* dependency, no RUNPATH into a toolchain,
# every dependency resolvable, and the expected SONAME.
set -euo pipefail
so=${1:?library}; soname=${2:?expected soname}
fail=0
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if printf '%s\n' "$needed" | grep -q '^libswift'; then echo "check_linkage: FAIL: needs Swift runtime libraries:"; printf '%s\n' "$needed"; fail=1; fi
actual=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$actual" = "$soname" ] || { echo "check_linkage: FAIL: SONAME is '$actual', expected '$soname'"; fail=1; }
if readelf -d "$so" | grep -E 'RPATH|RUNPATH' | grep -q '/'; then echo "check_linkage: FAIL: RUNPATH points into a folder:"; readelf -d "$so" | grep -E 'RPATH|RUNPATH'; fail=1; fi
if env -i /usr/bin/ldd "$so" | grep -q 'not found'; then echo "check_linkage: FAIL: unresolved dependencies"; env -i ldd "$so"; fail=1; fi
[ $fail -eq 0 ] && echo "check_linkage: ok: needs only $(echo $needed), SONAME $actual"
exit $fail
