#!/usr/bin/env bash
# The header is the contract. Checks that
#   1. the functions declared in include/adamcore.h, the functions Swift exports with @_cdecl, and the dynamic
#      symbols of libadamcore.so are the same set, and
#   2. every Swift declaration has exactly the header's types: Swift prints its own C view of each export
#      (-emit-clang-header-path); those declarations are compiled after the header with -Werror, so a differing
#      parameter or return type is a "conflicting types" error.
# Usage: check_header.sh LIBRARY MODULES_DIR
set -euo pipefail
so=${1:?library}; modules=${2:?swift modules dir}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# The exports use the kernels' `package` declarations: typecheck them as SwiftPM built them, in the same package.
manifest=${modules%/Modules}.yaml
package=$(grep -o -m1 -e '-package-name","[^"]*"' "$manifest" | cut -d'"' -f3)
[ -n "$package" ] || { echo "check_header: FAIL: no -package-name in $manifest"; exit 1; }
swiftc -typecheck -module-name AdamCoreABI -package-name "$package" -I "$modules" -I "$top/Sources/CAdamCore" \
  "$top"/Sources/AdamCoreABI/*.swift -emit-clang-header-path "$work/generated.h"
grep '^SWIFT_EXTERN' "$work/generated.h" > "$work/swift_decls.h"

grep -oE '^ADAMCORE_API [a-z_0-9 ]+[ *]adamcore_[a-z0-9_]+\(' "$top/include/adamcore.h" | grep -oE 'adamcore_[a-z0-9_]+' | sort > "$work/header.txt"
grep -oE ' adamcore_[a-z0-9_]+\(' "$work/swift_decls.h" | tr -d ' (' | sort > "$work/swift.txt"
nm -D --defined-only "$so" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort > "$work/exported.txt"

fail=0
compare() {
  if ! diff -u "$work/$1.txt" "$work/$2.txt" > "$work/diff.txt"; then
    echo "check_header: FAIL: $1 and $2 differ:"; cat "$work/diff.txt"; fail=1
  fi
}
compare header swift
compare header exported
[ "$(wc -l < "$work/header.txt")" -gt 30 ] || { echo "check_header: FAIL: too few declarations parsed"; fail=1; }

# OpaquePointer prints as void *: map exactly the handle parameters back to the header's handle type.
sed -e 's/void \* _Nullable handle\b/adamcore_optimizer * _Nullable handle/' \
    -e 's/void \* _Nullable \* _Nullable handleOut/adamcore_optimizer * _Nullable * _Nullable handleOut/' \
    "$work/swift_decls.h" > "$work/swift_mapped.h"
cat > "$work/check.c" <<C
#include "adamcore.h"
#define SWIFT_EXTERN extern
#define SWIFT_NOEXCEPT
#define SWIFT_WARN_UNUSED_RESULT
typedef size_t NSUInteger; /* Swift's UInt */
typedef ptrdiff_t NSInteger; /* Swift's Int */
#include "swift_mapped.h"
C
if ! clang -std=c11 -fsyntax-only -Werror -Wall -Wno-nullability-completeness -I "$top/include" -I "$work" "$work/check.c"; then
  echo "check_header: FAIL: Swift's declarations conflict with include/adamcore.h"; fail=1
fi
# The header alone, in the oldest dialects it promises (README, "C"), strictly: C89, C99, C++98, C++11.
printf '#include "adamcore.h"\nint main(void) { return ADAMCORE_OK; }\n' > "$work/dialects.c"
for std in c89 c99; do
  cc -std=$std -pedantic -Werror -Wall -Wextra -fsyntax-only -I "$top/include" "$work/dialects.c" \
    || { echo "check_header: FAIL: include/adamcore.h is not clean $std"; fail=1; }
done
for std in c++98 c++11; do
  c++ -x c++ -std=$std -pedantic -Werror -Wall -Wextra -fsyntax-only -I "$top/include" "$work/dialects.c" \
    || { echo "check_header: FAIL: include/adamcore.h is not clean $std"; fail=1; }
done
[ $fail -eq 0 ] && echo "check_header: ok: $(wc -l < "$work/header.txt") functions, same set in header, Swift and library, same types"
exit $fail
