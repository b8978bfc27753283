#!/usr/bin/env bash
# Runs the crate's test binaries on Debian's own Linux kernels under full-system qemu:
# AArch64 with Debian 12's arm64 kernel, RISC-V with Debian 13's riscv64 kernel.
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
#   KERNELS_MIRROR=URI                Debian mirror; default: the one this machine's apt uses
#   KERNELS_LIVE_PATCH=multi_thread_publish,pinned_readers_see_every_publish
#                                     tests that rewrite code other vCPUs run: they run in
#                                     a second boot with single-threaded TCG (see boot_for)
#   ICACHE_*                          forwarded into the guest's test environment
#   ICACHE_EXPECT_RISCV_PATH=fence.i  the RISC-V clear_cache path the tests must see (empty:
#                                     report it only)
# Downloads and build products live under target/kernels/ (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/kernels
mkdir -p "$work"
start_all=$(date +%s)
say() { echo "== kernels: $*"; }
die() {
  echo "== kernels: error: $*" >&2
  exit 1
}

arches=${KERNELS_ARCHES:-aarch64 riscv64}
timeout_s=${KERNELS_TIMEOUT:-600}
threads=${KERNELS_TEST_THREADS:-2}
live_patch=${KERNELS_LIVE_PATCH-multi_thread_publish,pinned_readers_see_every_publish}

# ---- tools (installed only when missing) ------------------------------------------------
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-system-aarch64 || need+=(qemu-system-arm)
have qemu-system-riscv64 || need+=(qemu-system-misc)
have cpio || need+=(cpio)
have jq || need+=(jq)
have file || need+=(file)
have gpgv || need+=(gpgv)
have xz || need+=(xz-utils)
have zstd || need+=(zstd) # some arm64 images are zstd-compressed EFI zboot payloads
have aarch64-linux-gnu-gcc || need+=(gcc-aarch64-linux-gnu)
have riscv64-linux-gnu-gcc || need+=(gcc-riscv64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
[ -e /usr/riscv64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-riscv64-cross)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing ${need[*]}"
  # Other jobs may hold the dpkg lock for a while: wait instead of failing.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
fi
# qemu-system-data ships OpenSBI as `-bios default`; Debian's opensbi package is the
# fallback when that file is missing.
rv_bios=default
if [ ! -e /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin ]; then
  fw=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
  if [ ! -e "$fw" ]; then
    say "installing opensbi"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends opensbi >/dev/null
  fi
  rv_bios=$fw
fi
rustup target add aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu >/dev/null 2>&1 || true

# ---- kernels ----------------------------------------------------------------------------
# shellcheck source=debian-mirror.sh
. .ci/debian-mirror.sh
mirror=${KERNELS_MIRROR:-$(find_mirror | head -n 1)}
mirror=${mirror%/}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# Private apt state: nothing of the machine's own apt configuration changes.
apt_dir=$work/apt
aptopts=(
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Architectures::=riscv64
  -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status=/dev/null
  -o Dir::Cache="$apt_dir/cache" -o Dir::Etc::SourceList="$apt_dir/sources.list"
  -o Dir::Etc::SourceParts="$apt_dir/empty" -o Dir::Etc::Preferences=/dev/null
  -o Dir::Etc::PreferencesParts="$apt_dir/empty" -o APT::Sandbox::User=root
  -o Acquire::Languages=none
)
apt_updated=0
apt_update() {
  [ "$apt_updated" = 1 ] && return 0
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt sources (set KERNELS_MIRROR)"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/empty"
  {
    echo "deb [arch=arm64 signed-by=$keyring] $mirror bookworm main"
    echo "deb [arch=riscv64 signed-by=$keyring] $mirror trixie main"
  } >"$apt_dir/sources.list"
  say "apt-get update (private lists: bookworm arm64, trixie riscv64)"
  # A release whose index does not match its signed Release file is dropped by apt;
  # fetch_unverified_index below reports and handles that case.
  apt-get "${aptopts[@]}" update -qq >"$apt_dir/update.log" 2>&1 || true
  grep -E '^(E|W):' "$apt_dir/update.log" | sed 's/^/   apt: /' | head -n 5 || true
  apt_updated=1
}

# Results of the helpers below go to globals (not stdout) so that `die` ends the script
# and state such as apt_updated survives.
#
# When apt rejected the index (seen here: the mirror served a riscv64 Packages file whose
# size and hash differ from the signed InRelease), fetch the InRelease, check its
# signature with gpgv, fetch the index and compare its hash. A mismatch is reported loudly
# and the kernel package is then checked against that index's SHA256 only.
index_file() { # suite arch -> $packages: an uncompressed Packages file
  local suite=$1 arch=$2 dir=$apt_dir/manual/$suite
  mkdir -p "$dir"
  /usr/lib/apt/apt-helper download-file "$mirror/dists/$suite/InRelease" "$dir/InRelease" >/dev/null 2>&1 ||
    die "cannot fetch $suite InRelease"
  gpgv --keyring "$keyring" "$dir/InRelease" >/dev/null 2>&1 || die "$suite InRelease: bad signature"
  /usr/lib/apt/apt-helper download-file "$mirror/dists/$suite/main/binary-$arch/Packages.xz" \
    "$dir/Packages.xz" >/dev/null 2>&1 || die "cannot fetch $suite $arch Packages.xz"
  local want got
  want=$(awk -v p="main/binary-$arch/Packages.xz" '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 }
    s && $3 == p { print $1 }' "$dir/InRelease")
  got=$(sha256sum "$dir/Packages.xz" | cut -d' ' -f1)
  if [ "$want" = "$got" ]; then
    say "$suite $arch index verified against the signed InRelease"
  else
    say "WARNING: $suite $arch Packages.xz from the mirror does not match the signed InRelease"
    say "WARNING: (InRelease sha256 ${want:-none}, served $got); the kernel package is checked"
    say "WARNING: only against the hash in that unverified index"
  fi
  xz -dc "$dir/Packages.xz" >"$dir/Packages"
  packages=$dir/Packages
}

# Sets $deb to a downloaded .deb of the newest kernel image for a Debian arch and suite.
fetch_kernel_deb() {
  local arch=$1 suite=$2 dir=$3 meta=linux-image-$1 pkg
  apt_update
  pkg=$(apt-cache "${aptopts[@]}" depends "$meta:$arch" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }' || true)
  if [ -n "$pkg" ]; then
    say "apt-get download ${pkg%:*}:$arch"
    (cd "$dir" && apt-get "${aptopts[@]}" download -qq "${pkg%:*}:$arch") ||
      die "apt-get download $pkg:$arch failed"
    deb=$(ls -t "$dir"/"${pkg%:*}"_*.deb | head -n 1)
    return
  fi
  say "apt has no verified $suite $arch index; fetching it by hand"
  local stanza file sha
  index_file "$suite" "$arch"
  pkg=$(awk -v RS= -v m="Package: $meta\n" 'index($0, m) == 1' "$packages" |
    sed -nE 's/^Depends: (linux-image-[^ ,]+).*/\1/p' | head -n 1)
  [ -n "$pkg" ] || die "no $meta in the $suite $arch index"
  stanza=$(awk -v RS= -v m="Package: $pkg\n" 'index($0, m) == 1' "$packages")
  file=$(sed -n 's/^Filename: //p' <<<"$stanza" | head -n 1)
  sha=$(sed -n 's/^SHA256: //p' <<<"$stanza" | head -n 1)
  [ -n "$file" ] && [ -n "$sha" ] || die "no Filename/SHA256 for $pkg"
  say "downloading $(basename "$file")"
  /usr/lib/apt/apt-helper download-file "$mirror/$file" "$dir/$(basename "$file")" "SHA256:$sha" \
    >/dev/null 2>&1 || die "download of $pkg failed or its SHA256 did not match"
  deb=$dir/$(basename "$file")
}

# Leaves a kernel image that qemu 7.2's -kernel accepts at $out: plain arm64/riscv Image.
# Debian ships arm64 either plain or as an EFI zboot (compressed payload inside a PE
# file), and some builds gzip it; riscv64's is a plain Image with a PE header.
unpack_kernel() {
  local deb=$1 out=$2 tmp=$2.d img magic
  rm -rf "$tmp" && mkdir -p "$tmp"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinu*' './boot/config-*'
  img=$(ls "$tmp"/boot/vmlinu* | head -n 1)
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
    *) die "unknown zboot compression '$comp' in $img" ;;
    esac
  else
    cp "$img" "$out.raw"
  fi
  # arm64 and riscv Images carry a magic at offset 56 ("ARMd" / "RSC\x05").
  case $(dd if="$out.raw" bs=1 skip=56 count=3 2>/dev/null | tr -d '\0') in
  ARM | RSC) ;;
  *) die "$img did not unpack to a kernel Image" ;;
  esac
  cp "$tmp"/boot/config-* "$out.config"
  mv "$out.raw" "$out"
  rm -rf "$tmp"
}

kernel_for() { # arch -> $img: the cached Image
  local arch=$1 debarch suite dir
  case $arch in
  aarch64) debarch=arm64 suite=bookworm ;;
  riscv64) debarch=riscv64 suite=trixie ;;
  esac
  dir=$work/$arch
  mkdir -p "$dir/deb"
  img=$dir/Image
  if [ -s "$img" ] && [ "${KERNELS_REFRESH:-0}" != 1 ]; then
    say "$arch kernel cached: $(cat "$img.source")"
    return
  fi
  fetch_kernel_deb "$debarch" "$suite" "$dir/deb"
  say "unpacking $(basename "$deb")"
  unpack_kernel "$deb" "$img"
  basename "$deb" >"$img.source"
  # The .deb is big and no longer needed once the Image is cached.
  rm -f "$dir"/deb/*.deb
}

# ---- build ------------------------------------------------------------------------------
export CARGO_TARGET_DIR=$work/build
build_for() { # arch -> fills $work/$arch/root
  local arch=$1 triple gcc json rootfs
  case $arch in
  aarch64) triple=aarch64-unknown-linux-gnu gcc=aarch64-linux-gnu-gcc ;;
  riscv64) triple=riscv64gc-unknown-linux-gnu gcc=riscv64-linux-gnu-gcc ;;
  esac
  rootfs=$work/$arch/root
  rm -rf "$rootfs"
  mkdir -p "$rootfs/t" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/tmp"
  json=$work/$arch/build.json
  say "building test binaries for $triple (static)"
  # Static, so the initramfs needs no libc; line tables keep backtraces readable while
  # keeping the archive small. Separate target dir: the normal build stays untouched.
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_DEV_DEBUG=line-tables-only \
    cargo test --no-run --target "$triple" --message-format=json >"$json" ||
    die "cargo test --no-run --target $triple failed"
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_DEV_DEBUG=line-tables-only \
    cargo build -q --manifest-path tests/kernel/report/Cargo.toml --target "$triple" ||
    die "building the guest reporter failed"
  cp "$CARGO_TARGET_DIR/$triple/debug/icache-kernel-report" "$rootfs/report"
  "$gcc" -static -O2 -Wall -Wextra -Werror -o "$rootfs/init" tests/kernel/init.c
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
total_pass=0
total_fail=0
summary=()
# Words NAME=value on the kernel command line reach init's environment. Debian's riscv64 kernel
# (6.12) accepts the prctl that lets the crate use a user fence.i: the RISC-V tests check that
# path was taken (tests/jit.rs, riscv_reports_its_clear_cache_path).
ICACHE_EXPECT_RISCV_PATH=${ICACHE_EXPECT_RISCV_PATH-fence.i}
if [ -n "$ICACHE_EXPECT_RISCV_PATH" ]; then
  export ICACHE_EXPECT_RISCV_PATH
else
  unset ICACHE_EXPECT_RISCV_PATH
fi
forward=""
while IFS='=' read -r k v; do
  case $k in ICACHE_*) [[ $v =~ ^[A-Za-z0-9_.,:-]*$ ]] && forward+=" $k=$v" ;; esac
done < <(env)

# One boot of the guest. pass "mt": multi-threaded TCG, every test except the live-patch
# ones; pass "st": single-threaded TCG, only the live-patch tests.
boot_for() {
  local arch=$1 image=$2 pass=$3 log=$work/$1/console-$3.log cmd console tcg filter
  local -a qemu
  case $arch in
  aarch64)
    # pauth-impdef: qemu's default (architected QARMA) pointer authentication makes the
    # Debian kernel boot about 3x slower under TCG; the CPU is otherwise `max`.
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
  local t0 rc=0
  t0=$(date +%s)
  timeout "$timeout_s" "${qemu[@]}" -smp 4 -m 1G -nographic -no-reboot -nic none \
    -kernel "$image" -initrd "$work/$arch/initramfs.cpio" -append "$cmd" </dev/null \
    >"$log.raw" 2>&1 || rc=$?
  tr -d '\r' <"$log.raw" >"$log"
  rm -f "$log.raw"
  local secs=$(($(date +%s) - t0))
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
    total_fail=$((total_fail + 1))
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
    if grep -q "^${mark}retry $n " "$log"; then
      detail="$detail (second run: the first stalled until the time limit)"
    fi
    # In the single-threaded pass a binary without any live-patch test ran nothing.
    [ "$pass" = st ] && [ "$verdict" = ok ] && [ "$passed" = 0 ] && continue
    if [ "$verdict" = ok ]; then
      # The reporter is a check, not a test binary: only its failure is counted.
      [ "$n" = report ] || total_pass=$((total_pass + 1))
    else
      total_fail=$((total_fail + 1))
      # Show the failing program's output (bounded) so CI logs explain themselves.
      [ -n "$body" ] && tail -n 60 <<<"$body" | grep -v '^test .* ok$' | sed "s/^/  [$arch $n] /"
    fi
    summary+=("$(printf '%-8s %-2s %-22s %-4s %s' "$arch" "$pass" "$n" "$verdict" "$detail")")
  done
}

for arch in $arches; do
  case $arch in aarch64 | riscv64) ;; *) die "unknown arch $arch" ;; esac
  kernel_for "$arch"
  build_for "$arch"
  boot_for "$arch" "$img" mt
  [ -z "$live_patch" ] || boot_for "$arch" "$img" st
done

say "results per binary and kernel:"
printf '  %s\n' "${summary[@]}"
say "took $(($(date +%s) - start_all))s"
echo "kernels: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
