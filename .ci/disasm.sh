#!/usr/bin/env bash
# Machine-code checks on what the crate compiles to in a user's crate (benches/src/disasm.rs):
# (a) AArch64 `clear_cache`: on every path, a loop of `dc cvau`, `dsb ish`, a loop of `ic ivau`,
#     `dsb ish`, `isb` (or the subsets CTR_EL0.IDC/DIC allow), and CTR_EL0 read only in the cold
#     function; (b) x86-64: an ignored `clear_cache` is a bare `ret`. The checks live in
#     .ci/disasm.py. Ends with "disasm: N passed, M failed".
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init disasm
ci_setup

out=target/disasm
mkdir -p "$out"

# Compiles the wrappers (the library of the benches member, without the peers) in release for
# $1 into $out/wrappers-$1.o (one codegen unit: one object to read) and prints the path of the
# icache rlib they were linked against, from Cargo's JSON messages.
build() {
  local target=$1
  CI_SAY_FD=2 say "building icache and the wrappers (release) for $target"
  cargo rustc --quiet --release -p icache-benches --lib --target "$target" \
    --message-format=json-render-diagnostics -- \
    -C codegen-units=1 --emit obj="$out/wrappers-$target.o" |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "icache":
        print(next(f for f in m["filenames"] if f.endswith(".rlib")))'
}
aarch64_rlib=$(build aarch64-unknown-linux-gnu)
build x86_64-unknown-linux-gnu >/dev/null

say "checking"
python3 .ci/disasm.py --aarch64-obj "$out/wrappers-aarch64-unknown-linux-gnu.o" \
  --aarch64-rlib "$aarch64_rlib" --x86-obj "$out/wrappers-x86_64-unknown-linux-gnu.o"
