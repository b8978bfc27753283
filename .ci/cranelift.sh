#!/usr/bin/env bash
# cranelift-jit as a real client of the compat/ crates (issue 12). compat/cranelift-test is built
# twice per cranelift-jit release: "stock" (the wasmtime icache crate from the registry) and
# "patched" (the same program with `[patch.crates-io]` pointing at compat/, given on the command
# line). Each build compiles, runs, frees and recompiles functions with a loop and calls, on one
# thread and on two. It runs natively (x86_64) and under the coherence checker (QEMU 10 and
# tests/qemu-plugin/coherence.c) on aarch64 max, cortex-a53, neoverse-n2 and riscv64.
#
# Fails if any run fails or gives a wrong result, if the patched build has any finding or
# warning, or if the stock build is NOT flagged where its release's known defects apply (then the
# checker did not see the client and the patched zeros would prove nothing).
#
#   CRANELIFT_VERSIONS="121 135 137"   releases to build: 121 = cranelift-jit 0.121.2 over
#       wasmtime-jit-icache-coherence 34.0.2; 135 = 0.135.8 over
#       wasmtime-internal-jit-icache-coherence 48.0.8; 137 = 0.137.1 over 50.0.1, which declares
#       Rust 1.97 (built with --ignore-rust-version; a build failure there is reported, not fatal)
# Prints a table (also in compat/cranelift-test/target/cranelift/table.md) and
# "cranelift: N passed, M failed".
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init cranelift
ci_setup
root=$PWD
crate=$root/compat/cranelift-test
out=$crate/target/cranelift
rm -rf "$out"
mkdir -p "$out/bin"
t0=$SECONDS

qemu=$(bash .ci/qemu10.sh) || { ci_fail "QEMU 10 build"; ci_summary; exit 1; }
export QEMU10_PREFIX=$qemu

# The patch: every release of the crate that cranelift-jit may pull, each from its compat/ mirror.
patch=()
for p in wt34:wasmtime-jit-icache-coherence:wasmtime-jit-icache-coherence-34 \
    wt48:wasmtime-internal-jit-icache-coherence:wasmtime-internal-jit-icache-coherence-48 \
    wt50:wasmtime-internal-jit-icache-coherence:wasmtime-internal-jit-icache-coherence-50; do
  IFS=: read -r key name dir <<<"$p"
  patch+=(--config "patch.crates-io.$key.package='$name'" --config "patch.crates-io.$key.path='$root/compat/$dir'")
done
targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done

# build VERSION VARIANT: the program for every target, copied to $out/bin/VARIANT-VERSION-TARGET.
# The lock file is the stock one; the patched build changes it, so it is put back afterwards.
build() {
  local v=$1 variant=$2 extra=() status=0 t
  [ "$v" != 137 ] || extra+=(--ignore-rust-version)
  [ "$variant" = stock ] || extra+=("${patch[@]}")
  [ ! -f "$crate/Cargo.lock" ] || cp "$crate/Cargo.lock" "$out/Cargo.lock.stock"
  local t1=$SECONDS
  (cd "$crate" && cargo build -q --release -p "cranelift-test-$v" "${target_args[@]}" "${extra[@]}") \
    >"$out/build-$variant-$v.log" 2>&1 || status=1
  [ ! -f "$out/Cargo.lock.stock" ] || mv "$out/Cargo.lock.stock" "$crate/Cargo.lock"
  say "$variant $v built in $((SECONDS - t1)) s (status $status)"
  [ "$status" = 0 ] || return 1
  for t in "${targets[@]}"; do
    cp "$crate/target/$t/release/cranelift-test-$v" "$out/bin/$variant-$v-$t"
  done
}

# What the stock releases are known to get wrong here (../shared/REFERENCE.md, BENCHMARKS.md):
# a cell "VERSION MODEL MODE" listed must have findings with the stock build; others may be clean.
# 34.0.2: no maintenance on AArch64; 48.0.8: no clean (ic before clean on IDC=1 cores); 50.0.1
# is right on AArch64. Every release: RISC-V flags 1 and no pipeline_flush_mt, so the reader
# thread runs code only the writer's hart flushed.
expect_stock() { # version model mode
  case "$1:$2:$3" in
    *:rv64:threads) return 0 ;;
    121:max:* | 121:cortex-a53:* | 121:neoverse-n2:*) return 0 ;;
    135:max:* | 135:cortex-a53:* | 135:neoverse-n2:*) return 0 ;;
  esac
  return 1
}

table=$out/table.md
models=(native max cortex-a53 neoverse-n2 rv64)
{
  printf '| build |'
  for m in "${models[@]}"; do printf ' %s 1 thread | %s 2 threads |' "$m" "$m"; done
  printf '\n|---|'
  for _ in "${models[@]}"; do printf -- '---|---|'; done
  printf '\n'
} >"$table"

# One run; prints the cell's text and returns 0 if the run itself succeeded.
run_one() { # bin model mode dir
  local bin=$1 model=$2 mode=$3 dir=$4 log=$4.log summary
  if [ "$model" = native ]; then
    "$bin" "$mode" >"$log" 2>&1
    grep -q "generations correct" "$log" && { echo "ok"; return 0; }
    echo "FAILED"; return 1
  fi
  bash .ci/coherence-run --cpu "$model" --out "$dir" --show 0 -- "$bin" "$mode" >"$log" 2>&1
  grep -q "generations correct" "$log" || { echo "FAILED"; return 1; }
  summary=$(grep '^coherence: [0-9]* processes' "$log" | tail -n 1)
  # "coherence: 1 processes, 0 findings (none), 0 warnings (none), 5000 executions ... checked"
  local nf nw checked
  nf=$(sed -E 's/.* ([0-9]+) findings.*/\1/' <<<"$summary")
  nw=$(sed -E 's/.* ([0-9]+) warnings.*/\1/' <<<"$summary")
  checked=$(sed -E 's/.* ([0-9]+) executions of written code checked.*/\1/' <<<"$summary")
  if [ -z "$summary" ] || [ "${checked:-0}" -lt 100 ]; then
    echo "NOT CHECKED"; return 1
  fi
  if [ "$nf" = 0 ] && [ "$nw" = 0 ]; then
    echo "0"
  else
    sed -E 's/.* findings \(([^)]*)\), [0-9]+ warnings \(([^)]*)\).*/\1; warnings \2/; s/; warnings none//' <<<"$summary"
  fi
}

for v in ${CRANELIFT_VERSIONS:-121 135 137}; do
  case $v in
    121) label="cranelift-jit 0.121.2, wasmtime-jit-icache-coherence 34.0.2" ;;
    135) label="cranelift-jit 0.135.8, wasmtime-internal-jit-icache-coherence 48.0.8" ;;
    137) label="cranelift-jit 0.137.1, wasmtime-internal-jit-icache-coherence 50.0.1" ;;
    *) ci_fail "unknown version $v"; continue ;;
  esac
  for variant in stock patched; do
    if ! build "$v" "$variant"; then
      tail -n 15 "$out/build-$variant-$v.log"
      if [ "$v" != 137 ]; then
        ci_fail "$variant $v does not build"
      else
        echo "cranelift: $variant $v does not build with $(rustc --version) (Rust 1.97 declared); not counted"
        echo "| $variant: $label | does not build with this toolchain (see the build log) |" >>"$table"
      fi
      continue
    fi
    row="| $variant: $label |"
    for model in "${models[@]}"; do
      case $model in
        native) bin=$out/bin/$variant-$v-x86_64-unknown-linux-gnu ;;
        rv64) bin=$out/bin/$variant-$v-riscv64gc-unknown-linux-gnu ;;
        *) bin=$out/bin/$variant-$v-aarch64-unknown-linux-gnu ;;
      esac
      for mode in single threads; do
        what="$variant $v on $model, $mode"
        cell=$(run_one "$bin" "$model" "$mode" "$out/run-$variant-$v-$model-$mode")
        status=$?
        row+=" $cell |"
        if [ "$status" != 0 ]; then
          ci_fail "$what: $cell"; tail -n 5 "$out/run-$variant-$v-$model-$mode.log"
        elif [ "$model" = native ]; then
          ci_pass "$what: ran, results correct"
        elif [ "$variant" = patched ]; then
          if [ "$cell" = 0 ]; then ci_pass "$what: 0 findings"; else ci_fail "$what: $cell"; fi
        elif expect_stock "$v" "$model" "$mode"; then
          if [ "$cell" != 0 ]; then ci_pass "$what: known defect flagged: $cell"; else ci_fail "$what: known defect NOT flagged"; fi
        else
          ci_pass "$what: $cell (no known defect applies)"
        fi
      done
    done
    echo "$row" >>"$table"
  done
done

say "findings per model (each cell: findings by class, 0 = none; native: result check only)"
cat "$table"
say "stage took $((SECONDS - t0)) s"
# CRANELIFT_UPDATE=BENCHMARKS.md: writes the table into that file's Cranelift section.
if [ -n "${CRANELIFT_UPDATE:-}" ]; then
  python3 - "$CRANELIFT_UPDATE" "$table" <<'PY'
import sys
path, table = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- cranelift:begin -->", "<!-- cranelift:end -->"
section = f"""{begin}
## A real Cranelift JIT under the coherence checker, stock and patched

Generated by `CRANELIFT_UPDATE=BENCHMARKS.md bash .ci/cranelift.sh`. `compat/cranelift-test`:
cranelift-jit compiles a function with a loop, one that calls it and one that calls into Rust,
runs them, frees the module and recompiles with other constants, six generations, mostly at the
same address; on 1 thread, and on 2 with a reader that makes no system call. Built against the
wasmtime icache crate from the registry (stock) and with the `compat/` patch (patched), then run
natively (x86-64: results checked) and under the coherence checker (QEMU 10). A cell is the
checker's findings by class (each stale stored instruction word counted once per version);
`0` is none. The stage fails if a patched run has any finding or a stock run is not flagged
where its release is known to be wrong.

{table}
{end}"""
text = open(path).read()
if begin in text and end in text:
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
fi
ci_summary
