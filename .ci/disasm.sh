#!/usr/bin/env bash
# Machine-code checks on what the crate compiles to in a user's crate (.ci/disasm_wrappers.rs):
# (a) AArch64 `clear_cache`: on every path, a loop of `dc cvau`, `dsb ish`, a loop of `ic ivau`,
#     `dsb ish`, `isb` (or the subsets CTR_EL0.IDC/DIC allow), and CTR_EL0 read only in the cold
#     function; (b) x86-64: an ignored `clear_cache` is a bare `ret`. The checks live in
#     .ci/disasm.py. Ends with "disasm: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the cross toolchains and rustup targets when missing; idempotent.
# shellcheck source=setup.sh
. .ci/setup.sh

out=target/disasm
mkdir -p "$out"

# Builds the release rlib for $1 and compiles the wrappers against it into $out/wrappers-$1.o
# (one codegen unit: one object to read). Prints the rlib's path.
build() {
  local target=$1 rlib
  echo "== disasm: building icache (release) for $target" >&2
  rlib=$(.ci/icache-rlib.sh "$target")
  rustc --edition 2021 --crate-type rlib --crate-name icache_disasm -C opt-level=3 \
    -C codegen-units=1 --target "$target" \
    --extern icache="$rlib" -L dependency="$(dirname "$rlib")/deps" \
    --emit obj="$out/wrappers-$target.o" .ci/disasm_wrappers.rs
  echo "$rlib"
}
aarch64_rlib=$(build aarch64-unknown-linux-gnu)
build x86_64-unknown-linux-gnu >/dev/null

echo "== disasm: checking"
python3 .ci/disasm.py --aarch64-obj "$out/wrappers-aarch64-unknown-linux-gnu.o" \
  --aarch64-rlib "$aarch64_rlib" --x86-obj "$out/wrappers-x86_64-unknown-linux-gnu.o"
