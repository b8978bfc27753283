#!/usr/bin/env bash
# Beyond Linux: build-checks (clippy -D warnings) and docs for every non-Linux-gnu target the
# crate supports, the test suite for x86_64-pc-windows-gnu under Wine, and a bare-metal AArch64
# program under qemu-system-aarch64.
#
# Installs what it needs, skipping what is present: rustup targets, a nightly with rust-src (for
# the targets rustup ships no std for), Wine, the MinGW cross compiler and qemu-system-arm. Prints one line per
# target and ends with "platforms: N passed, M failed"; exits non-zero if anything failed.
#
#   .ci/platforms.sh              everything
#   .ci/platforms.sh --no-wine    build-checks only
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init platforms

run_wine=1
[ "${1:-}" = "--no-wine" ] && run_wine=0

log=target/platforms
mkdir -p "$log"

# Tier-2 targets with a std from rustup, and the extra cargo flags each needs.
# Bare metal has no std: the crate is built without its `std` feature there.
stable_targets=(
  "x86_64-pc-windows-gnu|--lib --test windows_jit"
  "aarch64-pc-windows-msvc|--lib --test windows_jit"
  "aarch64-apple-darwin|--lib"
  "x86_64-apple-darwin|--lib"
  "aarch64-apple-ios|--lib"
  "x86_64-unknown-freebsd|--lib"
  "aarch64-linux-android|--lib"
  "armv7-linux-androideabi|--lib"
  "aarch64-unknown-none|--lib --no-default-features"
  "riscv64gc-unknown-none-elf|--lib --no-default-features"
  "powerpc64le-unknown-linux-gnu|--lib"
)
# No std from rustup: checked with nightly's -Zbuild-std=core (the crate is no_std underneath).
nightly_targets=(
  "aarch64-unknown-freebsd|--lib --no-default-features"
  "loongarch64-unknown-linux-gnu|--lib --no-default-features"
)

say "installing what is missing"
ci_targets "${stable_targets[@]%%|*}"
rustup component add clippy >/dev/null 2>&1 || true

have_nightly=1
ci_toolchain nightly rust-src clippy || have_nightly=0

ci_apt qemu-system-aarch64:qemu-system-arm
[ $run_wine = 0 ] || ci_apt wine:wine wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64

results=()
report() { # target, status, detail
  results+=("$(printf '%-44s %-7s %s' "$1" "$2" "$3")")
  if [ "$2" = failed ]; then ci_fail "$1: $3"; else ci_pass "$1: $3"; fi
}

# check <target> <toolchain args...> -- <cargo flags>
check() {
  local t=$1 tc=$2 flags=$3 out="$log/$1.log" docflags="-D warnings"
  echo "== $t"
  # shellcheck disable=SC2086 # flags are word lists on purpose
  if cargo $tc clippy -q --target "$t" $flags -- -D warnings >"$out" 2>&1 &&
     RUSTDOCFLAGS="$docflags" cargo $tc doc -q --no-deps --target "$t" \
       ${flags//--test windows_jit/} >>"$out" 2>&1; then
    report "$t" passed "clippy -D warnings + doc"
  else
    tail -n 30 "$out"
    report "$t" failed "clippy/doc (see $out)"
  fi
}

for entry in "${stable_targets[@]}"; do
  check "${entry%%|*}" "" "${entry#*|}"
done
for entry in "${nightly_targets[@]}"; do
  t=${entry%%|*}
  if [ $have_nightly = 1 ]; then
    check "$t" "+nightly" "${entry#*|} -Zbuild-std=core"
  else
    report "$t" failed "no nightly with rust-src could be installed"
  fi
done

# Bare-metal AArch64 at EL1 under qemu-system-aarch64 with semihosting (tests/baremetal): the
# crate's no-OS path on three line sizes. QEMU models no instruction cache, so this shows the
# path runs and reports what it documents, not coherence itself.
t=aarch64-unknown-none
echo "== $t: tests/baremetal under qemu-system-aarch64"
out="$log/baremetal.log"
bm_target="$PWD/target/baremetal"
if (cd tests/baremetal &&
    RUSTFLAGS="-C link-arg=-T$PWD/link.ld -D warnings" CARGO_TARGET_DIR="$bm_target" \
      cargo build -q --target "$t") >"$out" 2>&1; then
  for cpu in cortex-a53 max a64fx; do
    if timeout 60 qemu-system-aarch64 -M virt -cpu "$cpu" -nographic -nic none -semihosting \
         -kernel "$bm_target/$t/debug/icache-baremetal-test" >>"$out" 2>&1; then
      report "$t (qemu -cpu $cpu)" passed "$(grep -o 'line: Some([0-9]*)' "$out" | tail -n 1 | tr -dc 0-9)-byte I-lines; $(grep -o '[0-9]* of [0-9]* checks passed' "$out" | tail -n 1)"
    else
      tail -n 20 "$out"
      report "$t (qemu -cpu $cpu)" failed "see $out"
    fi
  done
else
  tail -n 30 "$out"
  report "$t (qemu)" failed "build (see $out)"
fi

if [ $run_wine = 1 ]; then
  t=x86_64-pc-windows-gnu
  echo "== $t: test suite under Wine"
  out="$log/wine-test.log"
  deps="target/$t/debug/deps"
  # Wine 8 has no bcryptprimitives.dll, whose ProcessPrng Rust's std imports: a shim goes next to
  # the test executables (the loader searches the executable's directory first).
  export WINEPREFIX="$PWD/target/wine" WINEDEBUG=-all
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
  # tests/jit.rs and tests/stress.rs map memory with mmap (Unix only): tests/windows_jit.rs is
  # the Windows JIT test. plan.rs is pure logic. Then the doc tests.
  tests=(--lib --test windows_jit --test plan)
  if cargo test -q --target "$t" "${tests[@]}" --no-run >"$out" 2>&1 &&
     mkdir -p "$deps" &&
     x86_64-w64-mingw32-gcc -O2 -shared -o "$deps/bcryptprimitives.dll" \
       tests/windows/bcryptprimitives.c -ladvapi32 >>"$out" 2>&1 &&
     { [ -d "$WINEPREFIX" ] || wineboot --init >>"$out" 2>&1 || true; } &&
     cargo test -q --target "$t" "${tests[@]}" >>"$out" 2>&1 &&
     # The doc tests too: each is its own executable in a temporary folder, so the shim goes
     # where Wine's loader looks after that folder, the prefix's system32.
     cp "$deps/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/" &&
     cargo test -q --doc --target "$t" >>"$out" 2>&1; then
    summary=$(grep -E '^test result:' "$out" | awk '{p += $4; f += $6} END {print p " passed, " f " failed"}')
    report "$t (wine)" passed "cargo test: $summary"
  else
    tail -n 40 "$out"
    report "$t (wine)" failed "cargo test under wine (see $out)"
  fi
fi

echo
say "results"
printf '   %s\n' "${results[@]}"
ci_summary
