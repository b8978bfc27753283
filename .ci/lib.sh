# shellcheck shell=bash
# What the CI scripts share, sourced (`. .ci/lib.sh`) after `set -euo pipefail` or `set -uo
# pipefail`. Sourcing it changes to the repository root and defines functions only; it installs
# nothing by itself. The interface:
#
#   ci_init NAME              name for messages and the summary line; CARGO_TERM_COLOR=never
#   say MSG... / warn MSG...  "== NAME: MSG" to CI_SAY_FD (default 1) / to stderr
#   die MSG...                "== NAME: error: MSG" on stderr, exit 1
#
#   ci_apt ENTRY...           apt-get install what is missing, one update per process, waits up
#                             to 10 min for the dpkg lock. ENTRY: `command:package` (a command on
#                             PATH), `/path:package` (a file) or `package` (dpkg status)
#   ci_toolchain NAME [COMPONENT...]   a rustup toolchain (nightly, 1.81, ...) with components;
#                             non-zero if it cannot be had
#   ci_targets TRIPLE...      rustup target add those not installed yet
#   ci_setup                  the cross toolchains, qemu-user and rustup targets of CI_CROSS,
#                             the host tools, clippy and rustfmt; checks .cargo/config.toml
#
#   CI_CROSS                  the Linux cross targets: "triple gnu-prefix qemu-binary deb-arch"
#   ci_cross TRIPLE           sets CI_GNU (aarch64-linux-gnu), CI_QEMU (qemu-aarch64),
#                             CI_DEBARCH (arm64), CI_LINKER, CI_SYSROOT, CI_RUNNER (the
#                             qemu-user command line) and CI_RUNNER_VAR (CARGO_TARGET_..._RUNNER)
#
#   ci_pass TEXT / ci_fail TEXT        count one check and print "NAME: PASS TEXT"
#   ci_check TEXT CMD...      runs CMD; passes or fails TEXT by its exit status
#   ci_summary                every failure again, then "NAME: N passed, M failed"; returns 1
#                             if anything failed (the last command of a script)
#
#   ci_mirror                 the Debian mirror this machine's apt uses (CI_MIRROR overrides)
#   ci_release DIR SUITE      DIR/Release: the suite's InRelease, signature checked with gpgv
#                             against the Debian archive keyring (both installed if missing)
#   ci_index DIR SUITE PATH   DIR/<PATH with / as _>: the uncompressed index PATH (e.g.
#                             main/binary-arm64/Packages) fetched by the SHA256 the signed
#                             Release names (by-hash; .xz, .gz, then plain), hash checked
#   ci_download URL OUT SHA256         a file whose SHA256 must match (kept if it already does)
#   ci_stanza FILE PACKAGE    the index stanza of PACKAGE
# The Debian functions return non-zero, with the reason on stderr, when anything does not verify.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
CI_NAME=${CI_NAME:-ci}
CI_PASSED=0 CI_FAILED=0 CI_FAILURES=()
CI_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

ci_init() { CI_NAME=$1 && export CARGO_TERM_COLOR=never; }
say() { echo "== $CI_NAME: $*" >&"${CI_SAY_FD:-1}"; }
warn() { echo "== $CI_NAME: $*" >&2; }
die() { warn "error: $*"; exit 1; }

# ---- installing -----------------------------------------------------------------------------
CI_APT_UPDATED=0
ci_apt() {
  local entry what pkg missing=()
  for entry; do
    what=${entry%%:*} pkg=${entry#*:}
    case $entry in
    /*) [ -e "$what" ] || missing+=("$pkg") ;;
    *:*) command -v "$what" >/dev/null 2>&1 || missing+=("$pkg") ;;
    *) dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg") ;;
    esac
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=() apt=(apt-get -o DPkg::Lock::Timeout=600 -qq)
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  warn "apt-get install ${missing[*]}"
  # Other jobs may hold the dpkg lock for a while: wait for it instead of failing.
  if [ "$CI_APT_UPDATED" = 0 ]; then
    "${sudo[@]}" "${apt[@]}" update >/dev/null
    CI_APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
    "${missing[@]}" >/dev/null
}

ci_toolchain() {
  local tc=$1 c installed missing=()
  shift
  if ! rustup run "$tc" rustc --version >/dev/null 2>&1; then
    warn "installing the $tc toolchain"
    rustup toolchain install "$tc" --profile minimal >&2 || return 1
  fi
  installed=$(rustup component list --toolchain "$tc" --installed 2>/dev/null) || return 1
  for c; do grep -q "^$c" <<<"$installed" || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || rustup component add --toolchain "$tc" "${missing[@]}" >&2
}

# ---- cross targets --------------------------------------------------------------------------
# The one table of Linux cross targets. .cargo/config.toml repeats the linker and runner lines
# (cargo reads no other file) and ci_setup fails when the two disagree.
CI_CROSS=(
  "aarch64-unknown-linux-gnu aarch64-linux-gnu qemu-aarch64 arm64"
  "riscv64gc-unknown-linux-gnu riscv64-linux-gnu qemu-riscv64 riscv64"
  "armv7-unknown-linux-gnueabihf arm-linux-gnueabihf qemu-arm armhf"
  "s390x-unknown-linux-gnu s390x-linux-gnu qemu-s390x s390x"
)
ci_cross() {
  local row triple
  for row in "${CI_CROSS[@]}"; do
    read -r triple CI_GNU CI_QEMU CI_DEBARCH <<<"$row"
    [ "$triple" = "$1" ] || continue
    CI_LINKER=$CI_GNU-gcc
    CI_SYSROOT=/usr/$CI_GNU
    CI_RUNNER="$CI_QEMU -L $CI_SYSROOT"
    # shellcheck disable=SC2034 # read by the scripts that source this file
    CI_RUNNER_VAR=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_RUNNER
    return 0
  done
  warn "$1 is not in CI_CROSS (.ci/lib.sh)"
  return 1
}
ci_cross_triples() { printf '%s\n' "${CI_CROSS[@]%% *}"; }

ci_setup() {
  local triple entries=(qemu-aarch64:qemu-user strace:strace gcc:gcc pkg-config:pkg-config
    python3:python3 aarch64-linux-gnu-objdump:binutils-aarch64-linux-gnu)
  for triple in $(ci_cross_triples); do
    ci_cross "$triple"
    entries+=("$CI_LINKER:gcc-$CI_GNU" "$CI_SYSROOT/lib/libc.a:libc6-dev-$CI_DEBARCH-cross")
  done
  ci_apt "${entries[@]}"
  rustup component add clippy rustfmt >/dev/null 2>&1 || true
  ci_targets "${CI_CROSS[@]%% *}"
  ci_check_cargo_config
}

ci_targets() {
  local have t missing=()
  have=$(rustup target list --installed)
  for t; do grep -qx "$t" <<<"$have" || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] || rustup target add "${missing[@]}" >/dev/null
}

# .cargo/config.toml must name the linker and runner CI_CROSS gives each target.
ci_check_cargo_config() {
  local triple got
  for triple in $(ci_cross_triples); do
    ci_cross "$triple"
    got=$(awk -v t="[target.$triple]" '/^\[/ { on = ($0 == t) } on && /^(linker|runner) =/' \
      .cargo/config.toml)
    [ "$got" = "linker = \"$CI_LINKER\""$'\n'"runner = \"$CI_RUNNER\"" ] ||
      { warn ".cargo/config.toml [target.$triple] differs from CI_CROSS in .ci/lib.sh"; return 1; }
  done
}

# ---- counting -------------------------------------------------------------------------------
ci_pass() { CI_PASSED=$((CI_PASSED + 1)) && echo "$CI_NAME: PASS $*"; }
ci_fail() { CI_FAILED=$((CI_FAILED + 1)) && CI_FAILURES+=("$*") && echo "$CI_NAME: FAIL $*"; }
ci_check() { if "${@:2}"; then ci_pass "$1"; else ci_fail "$1"; fi; }
ci_summary() {
  if [ "$CI_FAILED" -gt 0 ]; then
    echo "== $CI_NAME: failed:"
    printf '   %s\n' "${CI_FAILURES[@]}"
  fi
  echo "$CI_NAME: $CI_PASSED passed, $CI_FAILED failed"
  [ "$CI_FAILED" = 0 ]
}

# ---- Debian archive, fail closed --------------------------------------------------------------
# The mirror URIs this machine's apt already uses, so no host name is written into the project:
# release suites only (not -security/-updates), deb822 and one-line sources, the first one.
ci_mirror() {
  [ -z "${CI_MIRROR:-}" ] || { echo "${CI_MIRROR%/}"; return; }
  local f releases='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)$'
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] || continue
      awk -v rel="$releases" '
        function flush() { if (deb && uri != "" && ok) print uri; uri = ""; deb = 0; ok = 0 }
        /^[ \t]*$/ { flush(); next }
        /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ rel) ok = 1 }
        END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -e "$f" ] || continue
      sed -E 's/\[[^]]*\]//' "$f" | awk -v rel="$releases" '$1 == "deb" && $3 ~ rel { print $2 }'
    done
  } | head -n 1 | sed 's:/*$::'
}

ci_download() { # url out sha256
  if [ -f "$2" ] && echo "$3  $2" | sha256sum --quiet -c - >/dev/null 2>&1; then return 0; fi
  rm -f "$2"
  # apt-helper checks the hash as it downloads; the sha256sum after it does not trust that.
  if ! /usr/lib/apt/apt-helper download-file "$1" "$2" "SHA256:$3" >/dev/null 2>&1 ||
    ! echo "$3  $2" | sha256sum --quiet -c - >/dev/null 2>&1; then
    rm -f "$2"
    warn "$1: download failed or its SHA256 is not $3"
    return 1
  fi
}

ci_release() { # dir suite
  local dir=$1 suite=$2 mirror
  ci_apt gpgv:gpgv xz:xz-utils "$CI_KEYRING:debian-archive-keyring" || return 1
  mirror=$(ci_mirror)
  [ -n "$mirror" ] || { warn "no Debian mirror in the apt sources (set CI_MIRROR)"; return 1; }
  mkdir -p "$dir"
  rm -f "$dir/InRelease" "$dir/Release"
  /usr/lib/apt/apt-helper download-file "$mirror/dists/$suite/InRelease" "$dir/InRelease" \
    >/dev/null 2>&1 || { warn "cannot fetch $suite InRelease"; return 1; }
  gpgv --quiet --keyring "$CI_KEYRING" --output "$dir/Release" "$dir/InRelease" 2>/dev/null || {
    rm -f "$dir/Release"
    warn "$suite InRelease: the signature does not verify against $CI_KEYRING"
    return 1
  }
}

ci_index() { # dir suite path (Release already in dir)
  local dir=$1 suite=$2 path=$3 mirror ext sha out tried=""
  mirror=$(ci_mirror)
  out=$dir/$(tr / _ <<<"$path")
  for ext in .xz .gz ""; do
    sha=$(awk -v p="$path$ext" '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 }
      s && $3 == p { print $1; exit }' "$dir/Release")
    [ -n "$sha" ] || continue
    tried+=" $path$ext"
    ci_download "$mirror/dists/$suite/${path%/*}/by-hash/SHA256/$sha" "$out$ext.$sha" "$sha" 2>/dev/null ||
      continue
    case $ext in
    .xz) xz -dc "$out$ext.$sha" >"$out" ;;
    .gz) gzip -dc "$out$ext.$sha" >"$out" ;;
    *) cp "$out$ext.$sha" "$out" ;;
    esac
    # Copies named by older hashes are of no more use.
    find "$dir" -maxdepth 1 -name "${out##*/}*.*" ! -name "${out##*/}$ext.$sha" -delete
    return 0
  done
  if [ -z "$tried" ]; then
    warn "$suite: the signed Release names no $path"
  else
    warn "$suite: the mirror serves no by-hash copy of$tried that matches the signed Release"
  fi
  return 1
}

ci_stanza() { awk -v RS= -v m="Package: $2\n" 'index($0, m) == 1 { print; exit }' "$1"; }
