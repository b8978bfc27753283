#!/usr/bin/env bash
# Runs the crate's test binaries on Debian's own Linux kernels under full-system qemu:
# AArch64 with Debian 12's arm64 kernel, RISC-V with the riscv64 kernel of the first suite of
# Debian 13 or later whose signature chain verifies (see kernel_for).
# qemu-user hides missing cache maintenance and fakes riscv_flush_icache; a real kernel
# does neither.
#
# Judges only from what runs inside the guest: each binary's libtest summary and the
# exit status that tests/kernel/init.c prints. Closes with `kernels: N passed, M failed`
# (test binaries x kernels x boots) and exits non-zero on any failure, panic or timeout.
#
# Environment (all optional):
#   KERNELS_ARCHES="aarch64 riscv64"  which guests to boot
#   KERNELS_TIMEOUT=600               seconds per boot
#   KERNELS_TEST_THREADS=2            --test-threads inside the guest
#   KERNELS_REFRESH=1                 fetch the kernels again even when cached
#   CI_MIRROR=URI                     Debian mirror; default: the one this machine's apt uses
#   KERNELS_SUITES_AARCH64=bookworm   suites to take each kernel from, first that verifies
#   KERNELS_SUITES_RISCV64="trixie forky sid"
#   KERNELS_LIVE_PATCH=multi_thread_publish,pinned_readers_see_every_publish
#                                     tests that rewrite code other vCPUs run: they run in
#                                     a second boot with single-threaded TCG (see boot_for)
#   ICACHE_*                          forwarded into the guest's test environment
#   ICACHE_EXPECT_RISCV_PATH=fence.i  the RISC-V clear_cache path the tests must see (empty:
#                                     report it only)
# Downloads and build products live under target/kernels/ (never committed).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init kernels
root=$PWD
work=$root/target/kernels
mkdir -p "$work"
start_all=$(date +%s)

arches=${KERNELS_ARCHES:-aarch64 riscv64}
timeout_s=${KERNELS_TIMEOUT:-600}
threads=${KERNELS_TEST_THREADS:-2}
live_patch=${KERNELS_LIVE_PATCH-multi_thread_publish,pinned_readers_see_every_publish}

# ---- tools (installed only when missing) ------------------------------------------------
ci_setup
# zstd: some arm64 images are zstd-compressed EFI zboot payloads.
ci_apt qemu-system-aarch64:qemu-system-arm qemu-system-riscv64:qemu-system-misc cpio:cpio \
  jq:jq file:file xz:xz-utils zstd:zstd
# qemu-system-data ships OpenSBI as `-bios default`; Debian's opensbi package is the
# fallback when that file is missing.
rv_bios=default
if [ ! -e /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin ]; then
  rv_bios=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
  ci_apt "$rv_bios:opensbi"
fi

# ---- kernels ----------------------------------------------------------------------------
# The chain of trust fails closed: the suite's InRelease must verify against Debian's archive
# keyring (gpgv), the Packages index is fetched by the SHA256 that InRelease names (by-hash, so
# a mirror's stale plain index cannot get in the way), and the .deb must match the SHA256 in
# that index. A suite whose chain does not verify is not used; when no suite of an arch
# verifies, that arch fails the stage and nothing from the network runs.
# Suites in order of preference: riscv64 wants Linux 6.10+ (the fence.i prctl), which trixie
# (6.12) and later carry. Measured 2026-11-24: this machine's mirror serves trixie's riscv64
# index neither by hash (404) nor matching its InRelease; forky's and sid's verify.
declare -A suites_for=([aarch64]=${KERNELS_SUITES_AARCH64:-bookworm}
  [riscv64]=${KERNELS_SUITES_RISCV64:-trixie forky sid})

# Sets $debs to verified .debs of the newest kernel image of a Debian arch in one suite: the
# linux-image package, and from Linux 7 on the linux-binary (Image) and linux-base (config)
# packages it depends on.
fetch_kernel_deb() { # debarch suite dir
  local arch=$1 suite=$2 dir=$3 meta=linux-image-$1 index pkg stanza file sha deb
  local lists=$work/lists/$suite
  ci_release "$lists" "$suite" && ci_index "$lists" "$suite" "main/binary-$arch/Packages" ||
    return 1
  index=$lists/main_binary-${arch}_Packages
  say "$suite: InRelease signature good, $arch Packages index matches it (by-hash)"
  pkg=$(ci_stanza "$index" "$meta" | sed -nE 's/^Depends: (.*, )?(linux-image-[^ ,]+).*/\2/p')
  [ -n "$pkg" ] || { say "$suite: no $meta in the $arch index"; return 1; }
  local pkgs=("$pkg")
  mapfile -t -O 1 pkgs < <(ci_stanza "$index" "$pkg" | sed -n 's/^Depends: //p' | tr ',' '\n' |
    sed -nE 's/^ *(linux-(binary|base)-[^ ]+).*/\1/p')
  debs=() deb_sha=""
  for pkg in "${pkgs[@]}"; do
    stanza=$(ci_stanza "$index" "$pkg")
    file=$(sed -n 's/^Filename: //p' <<<"$stanza")
    sha=$(sed -n 's/^SHA256: //p' <<<"$stanza")
    [ -n "$file" ] && [ -n "$sha" ] || { say "$suite: no Filename/SHA256 for $pkg"; return 1; }
    say "downloading $(basename "$file") (SHA256 $sha from the signed $suite index)"
    deb=$dir/$(basename "$file")
    ci_download "$(ci_mirror)/$file" "$deb" "$sha" || return 1
    debs+=("$deb")
    deb_sha+="${deb_sha:+, }$(basename "$file") $sha"
  done
  deb_suite=$suite
}

# Leaves a kernel image that qemu 7.2's -kernel accepts at $out: plain arm64/riscv Image.
# Debian ships arm64 either plain or as an EFI zboot (compressed payload inside a PE
# file), and some builds gzip it; riscv64's is a plain Image with a PE header.
# Returns non-zero when the packages hold no kernel Image.
unpack_kernel() { # out deb...
  local out=$1 tmp=$1.d img magic deb members
  shift
  rm -rf "$tmp" && mkdir -p "$tmp"
  # Debian 13 and older: /boot/vmlinu* and /boot/config-*; later: /usr/lib/modules/<v>/.
  for deb; do
    members=$(dpkg-deb -c "$deb" | awk '{ print $NF }' |
      grep -E '^\./(boot/(vmlinu|config-)|usr/lib/modules/[^/]+/(vmlinu[xz]|config)$)' || true)
    # shellcheck disable=SC2086 # one member per word
    [ -z "$members" ] || dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" $members || return 1
  done
  img=$(find "$tmp" -name 'vmlinu*' -type f | head -n 1)
  [ -n "$img" ] || { say "no vmlinu* in $*"; return 1; }
  magic=$(head -c 2 "$img" | od -An -tx1 | tr -d ' \n')
  if [ "$magic" = 1f8b ]; then
    gzip -dc "$img" >"$out.raw"
  elif [ "$(dd if="$img" bs=1 skip=4 count=4 2>/dev/null | tr -d '\0')" = zimg ]; then
    # EFI zboot header: payload offset and size at 8 and 12, compression name at 24.
    local off size comp
    off=$(od -An -tu4 -j8 -N4 "$img" | tr -d ' ')
    size=$(od -An -tu4 -j12 -N4 "$img" | tr -d ' ')
    comp=$(dd if="$img" bs=1 skip=24 count=8 2>/dev/null | tr -d '\0')
    case $comp in
    gzip) tail -c +"$((off + 1))" "$img" | head -c "$size" | gzip -dc >"$out.raw" ;;
    zstd | zstd22) tail -c +"$((off + 1))" "$img" | head -c "$size" | zstd -dc >"$out.raw" ;;
    xzkern | xz) tail -c +"$((off + 1))" "$img" | head -c "$size" | xz -dc >"$out.raw" ;;
    *) say "unknown zboot compression '$comp' in $img" && return 1 ;;
    esac
  else
    cp "$img" "$out.raw"
  fi
  # arm64 and riscv Images carry a magic at offset 56 ("ARMd" / "RSC\x05").
  case $(dd if="$out.raw" bs=1 skip=56 count=3 2>/dev/null | tr -d '\0') in
  ARM | RSC) ;;
  *) say "$img did not unpack to a kernel Image" && return 1 ;;
  esac
  find "$tmp" \( -name 'config-*' -o -name config \) -type f -exec cp {} "$out.config" \;
  mv "$out.raw" "$out"
  rm -rf "$tmp"
}

# The CI_CROSS row of a guest arch (.ci/lib.sh): aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu.
triple_of() { ci_cross_triples | grep "^$1"; }

kernel_for() { # arch -> $img: a verified Image, cached with its SHA256
  local arch=$1 suites=${suites_for[$1]} suite dir
  ci_cross "$(triple_of "$arch")"
  dir=$work/$arch
  mkdir -p "$dir/deb"
  img=$dir/Image
  # A cached Image counts only if it is the one recorded when its .deb verified.
  if [ "${KERNELS_REFRESH:-0}" != 1 ] && [ -s "$img.sha256" ] &&
    (cd "$dir" && sha256sum --quiet -c Image.sha256 >/dev/null 2>&1); then
    say "$arch kernel cached: $(cat "$img.source")"
    return 0
  fi
  rm -f "$img" "$img.sha256" "$img.source"
  debs=()
  for suite in $suites; do
    fetch_kernel_deb "$CI_DEBARCH" "$suite" "$dir/deb" && break
    say "$suite: not used for $arch (its chain does not verify)"
    debs=()
  done
  [ ${#debs[@]} -gt 0 ] || { say "$arch: no suite of '$suites' verifies: no $arch kernel is booted"; return 1; }
  say "unpacking ${debs[*]##*/}"
  unpack_kernel "$img" "${debs[@]}" || return 1
  echo "$deb_suite: $deb_sha" >"$img.source"
  (cd "$dir" && sha256sum Image >Image.sha256)
  # The .deb is big and no longer needed once the Image is cached.
  rm -f "$dir"/deb/*.deb
}

# ---- build ------------------------------------------------------------------------------
export CARGO_TARGET_DIR=$work/build
build_for() { # arch -> fills $work/$arch/root
  local arch=$1 triple json rootfs
  triple=$(triple_of "$arch")
  ci_cross "$triple"
  rootfs=$work/$arch/root
  rm -rf "$rootfs"
  mkdir -p "$rootfs/t" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/tmp"
  json=$work/$arch/build.json
  say "building test binaries for $triple (static)"
  # Static, so the initramfs needs no libc; line tables keep backtraces readable while
  # keeping the archive small. Separate target dir: the normal build stays untouched.
  local static=(env RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_DEV_DEBUG=line-tables-only)
  "${static[@]}" cargo test --no-run --target "$triple" --message-format=json >"$json" ||
    die "cargo test --no-run --target $triple failed"
  "${static[@]}" cargo build -q --manifest-path tests/kernel/report/Cargo.toml --target "$triple" ||
    die "building the guest reporter failed"
  cp "$CARGO_TARGET_DIR/$triple/debug/icache-kernel-report" "$rootfs/report"
  "$CI_LINKER" -static -O2 -Wall -Wextra -Werror -o "$rootfs/init" tests/kernel/init.c
  # Every test-harness executable: the lib's unit tests and each tests/*.rs.
  jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
         | "\(.target.kind[0])-\(.target.name) \(.executable)"' "$json" |
    while read -r name exe; do cp "$exe" "$rootfs/t/$name"; done
  local f
  for f in "$rootfs/init" "$rootfs/report" "$rootfs"/t/*; do
    [ -e "$f" ] || die "no test binaries were built for $triple"
    file -b "$f" | grep -Eq 'statically linked|static-pie linked' || die "$f is not static: $(file -b "$f")"
  done
  (cd "$rootfs" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 >"$work/$arch/initramfs.cpio")
  say "$arch initramfs: $(ls "$rootfs/t" | tr '\n' ' ')($(du -m "$work/$arch/initramfs.cpio" | cut -f1) MiB)"
}

# ---- boot and judge ---------------------------------------------------------------------
summary=()
# Words NAME=value on the kernel command line reach init's environment. Debian's riscv64 kernel
# (6.12) accepts the prctl that lets the crate use a user fence.i: the RISC-V tests check that
# path was taken (tests/jit.rs, riscv_reports_its_clear_cache_path).
ICACHE_EXPECT_RISCV_PATH=${ICACHE_EXPECT_RISCV_PATH-fence.i}
if [ -n "$ICACHE_EXPECT_RISCV_PATH" ]; then export ICACHE_EXPECT_RISCV_PATH; else unset ICACHE_EXPECT_RISCV_PATH; fi
forward=""
while IFS='=' read -r k v; do
  case $k in ICACHE_*) [[ $v =~ ^[A-Za-z0-9_.,:-]*$ ]] && forward+=" $k=$v" ;; esac
done < <(env)

# One boot of the guest. pass "mt": multi-threaded TCG, every test except the live-patch
# ones; pass "st": single-threaded TCG, only the live-patch tests.
boot_for() {
  local arch=$1 image=$2 pass=$3 log=$work/$1/console-$3.log cmd console tcg filter qemu=()
  case $arch in
  aarch64)
    # pauth-impdef: qemu's default (architected QARMA) pointer authentication makes the
    # Debian kernel boot about 3x slower under TCG; the CPU is otherwise `max`.
    # shellcheck disable=SC2054 # the commas are part of the -cpu value
    qemu=(qemu-system-aarch64 -machine virt -cpu max,pauth-impdef=on)
    console=ttyAMA0
    ;;
  riscv64)
    qemu=(qemu-system-riscv64 -machine virt -bios "$rv_bios")
    console=ttyS0
    ;;
  esac
  # qemu models no I-cache: its only coherence is dropping translations of written code,
  # and with multi-threaded TCG (7.2) a vCPU that translates code while another vCPU
  # rewrites it can keep the stale translation, whatever the guest's cache maintenance.
  # Tests that patch code while other threads run it hit that window (aarch64: stale code
  # in 7 of 8 runs of multi_thread_publish and 5 of 6 of pinned_readers_see_every_publish
  # with thread=multi, in none with thread=single). Single-threaded TCG makes other tests
  # several times slower (past the time limit), so only those tests run there.
  if [ "$pass" = mt ]; then
    tcg=multi filter=${live_patch:+ icache.skip=$live_patch}
  else
    tcg=single filter=" icache.only=$live_patch"
  fi
  cmd="console=$console panic=-1 quiet icache.threads=$threads$filter$forward"
  qemu+=(-accel "tcg,thread=$tcg")
  say "booting $arch: $(cat "$work/$arch/Image.source") (tcg thread=$tcg, timeout ${timeout_s}s)"
  local t0=$SECONDS rc=0
  timeout "$timeout_s" "${qemu[@]}" -smp 4 -m 1G -nographic -no-reboot -nic none \
    -kernel "$image" -initrd "$work/$arch/initramfs.cpio" -append "$cmd" </dev/null \
    >"$log.raw" 2>&1 || rc=$?
  tr -d '\r' <"$log.raw" >"$log"
  rm -f "$log.raw"
  local secs=$((SECONDS - t0))
  say "$arch guest ran ${secs}s (qemu exit $rc), console log: ${log#"$root"/}"
  local mark='@@icache-kernel '
  if [ "$pass" = mt ]; then
    sed -n "s/^$mark\(uname-r\|nproc\|membarrier-query\|riscv_flush_icache\|uptime-at-init\|env\|skip\) /  guest: \1 /p" "$log"
    grep '^report: ' "$log" | sed 's/^/  guest: /' || true
  fi

  local problem=""
  [ "$rc" = 124 ] && problem="timeout after ${timeout_s}s"
  grep -q 'Kernel panic' "$log" && problem="kernel panic: $(grep -m1 'Kernel panic' "$log")"
  grep -q "^${mark}all-done" "$log" || problem="${problem:-init did not finish}"
  if [ -n "$problem" ]; then
    say "$arch: $problem"
    tail -n 30 "$log" | sed "s/^/  [$arch console] /"
    ci_fail "$arch $pass boot: $problem"
    summary+=("$(printf '%-8s %-2s %-22s %-4s %s' "$arch" "$pass" "(boot)" fail "$problem")")
  fi

  local names=(report) n
  for n in "$work/$arch/root/t"/*; do names+=("$(basename "$n")"); done
  for n in "${names[@]}"; do
    local body end verdict detail results passed=0
    # The program's output between its begin and end markers.
    # The last run counts: init runs a program once more after the time limit killed it.
    body=$(awk -v b="${mark}begin $n" -v e="${mark}end $n " '$0 == b { on = 1; buf = ""; next }
      on { buf = buf $0 "\n" } on && index($0, e) == 1 { on = 0; last = buf }
      END { if (on) last = buf; printf "%s", last }' "$log")
    end=$(grep "^${mark}end $n " <<<"$body" || true)
    verdict=fail
    if [ -z "$body" ]; then
      detail="never started"
    elif [ -z "$end" ]; then
      detail="did not finish"
    elif [ "$n" = report ]; then
      grep -q ' exit=0 ' <<<"$end" && verdict=ok
      detail=${end#"${mark}end $n "}
    else
      results=$(grep -E '^test result: ' <<<"$body" || true)
      passed=$(sed -nE 's/^test result: ok\. ([0-9]+) passed; 0 failed.*/\1/p' <<<"$results" |
        awk '{ s += $1 } END { print s + 0 }')
      if grep -q ' exit=0 ' <<<"$end" && [ -n "$results" ] && ! grep -qv '^test result: ok\.' <<<"$results"; then
        verdict=ok
        detail="$passed tests passed, ${end##* }"
      else
        detail="${end#"${mark}end $n "}; $(grep -m1 -E '^test result: FAILED' <<<"$body" || echo 'no ok summary')"
      fi
    fi
    grep -q "^${mark}retry $n " "$log" && detail+=" (second run: the first stalled until the time limit)"
    # In the single-threaded pass a binary without any live-patch test ran nothing.
    [ "$pass" = st ] && [ "$verdict" = ok ] && [ "$passed" = 0 ] && continue
    if [ "$verdict" = ok ]; then
      # The reporter is a check, not a test binary: only its failure is counted.
      [ "$n" = report ] || ci_pass "$arch $pass $n: $detail"
    else
      ci_fail "$arch $pass $n: $detail"
      # Show the failing program's output (bounded) so CI logs explain themselves.
      [ -n "$body" ] && tail -n 60 <<<"$body" | grep -v '^test .* ok$' | sed "s/^/  [$arch $n] /"
    fi
    summary+=("$(printf '%-8s %-2s %-22s %-4s %s' "$arch" "$pass" "$n" "$verdict" "$detail")")
  done
}

for arch in $arches; do
  case $arch in aarch64 | riscv64) ;; *) die "unknown arch $arch" ;; esac
  if ! kernel_for "$arch"; then
    ci_fail "$arch: no kernel whose signature chain verifies"
    summary+=("$(printf '%-8s %-2s %-22s %-4s %s' "$arch" - "(kernel)" fail "no verified kernel")")
    continue
  fi
  build_for "$arch"
  boot_for "$arch" "$img" mt
  [ -z "$live_patch" ] || boot_for "$arch" "$img" st
done

say "results per binary and kernel:"
printf '  %s\n' "${summary[@]}"
say "took $(($(date +%s) - start_all))s"
ci_summary
