#!/usr/bin/env bash
# Fault injection for pipeline_flush_mt: runs tests/faults.rs under a seccomp filter
# (tests/seccomp/inject.c) that makes membarrier fail, natively and under qemu-user (whose
# guest membarrier is the host's, so the one x86-64 filter reaches it), then counts the
# membarrier system calls with strace to show the steady state costs one call per flush and a
# refused mechanism is remembered (no calls at all).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init faults
ci_setup

out=target/faults
mkdir -p "$out"
say "building the seccomp launcher"
gcc -O2 -std=c11 -Wall -Wextra -Werror -o "$out/inject" tests/seccomp/inject.c

# The qemu-user runners of .ci/lib.sh; the binaries are dynamically linked against the cross libc.
targets=(host aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
declare -A runner=([host]="") bin
for t in "${targets[@]}"; do
  say "building tests/faults.rs for $t"
  target_arg=()
  [ "$t" = host ] || { target_arg=(--target "$t") && ci_cross "$t" && runner[$t]=$CI_RUNNER; }
  exe=$(cargo test --test faults --no-run --message-format=json "${target_arg[@]}" |
    grep -o '"executable":"[^"]*/faults-[^"]*"' | tail -n 1 | cut -d'"' -f4)
  [ -x "$exe" ] || die "no test binary for $t"
  bin[$t]=$exe
done

modes=(none einval-synccore enosys eperm)
tests=(mechanism_matches_environment first_calls_race_and_agree flushes_report_what_was_done)

# run TARGET MODE ARGS...: the test binary of TARGET under the launcher in MODE.
run() {
  local t=$1 mode=$2
  shift 2
  # shellcheck disable=SC2086 # the runner is a command line
  ICACHE_FAULTS=$mode timeout 120 "$out/inject" "$mode" ${runner[$t]} "${bin[$t]}" "$@"
}

# 1. Each test alone in its own process (so the racing test makes the process's first call).
for t in "${targets[@]}"; do
  for mode in "${modes[@]}"; do
    for name in "${tests[@]}"; do
      log=$(run "$t" "$mode" --exact "$name" 2>&1) && rc=0 || rc=$?
      if [ "$rc" = 0 ] && grep -q "test result: ok. 1 passed" <<<"$log"; then
        ci_pass "$t $mode $name"
      else
        ci_fail "$t $mode $name (exit $rc$([ "$rc" = 124 ] && echo ': timed out'))"
        sed 's/^/    /' <<<"$log" | tail -n 25
      fi
    done
  done
done

# 2. membarrier calls per flush, counted by strace for two numbers of flushes. strace sees
# qemu's host system calls, which include the guest's forwarded membarrier.
count_membarrier() { # TARGET MODE CALLS -> number of membarrier calls in the whole run
  local t=$1 mode=$2 calls=$3 log
  log=$(mktemp)
  ICACHE_FAULTS_CALLS=$calls strace -f -qq -c -e trace=membarrier -o "$log" \
    env ICACHE_FAULTS="$mode" timeout 120 "$out/inject" "$mode" ${runner[$t]} "${bin[$t]}" \
    --exact flushes_report_what_was_done -q >/dev/null 2>&1 || { rm -f "$log"; return 1; }
  awk '$NF == "membarrier" { n = $4 } END { print n + 0 }' "$log"
  rm -f "$log"
}
k1=10 k2=260
for t in "${targets[@]}"; do
  for mode in "${modes[@]}"; do
    # A mechanism that is a membarrier costs one call per flush; a refused one (remembered as
    # failed) or riscv_flush_icache (not a membarrier) costs none.
    case "$t:$mode" in *:enosys | *:eperm | riscv64*:einval-synccore) per_call=0 ;; *) per_call=1 ;; esac
    if c1=$(count_membarrier "$t" "$mode" $k1) && c2=$(count_membarrier "$t" "$mode" $k2); then
      want=$(((k2 - k1) * per_call))
      line="$t $mode: membarrier calls $c1 for $k1 flushes, $c2 for $k2: difference $((c2 - c1)), expected $want"
      ci_check "$line" [ $((c2 - c1)) = "$want" ]
    else
      ci_fail "$t $mode: strace run failed"
    fi
  done
done

ci_summary
