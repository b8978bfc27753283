#!/usr/bin/env bash
# Builds QEMU 10 user mode (qemu-aarch64, qemu-riscv64) with TCG plugins from Debian 13's
# source package, for the coherence checker: Debian 12's QEMU 7.2 has plugin API v1, which
# cannot read registers, so a plugin there cannot know which line `dc cvau`/`ic ivau` names.
#
# The chain of trust fails closed: the trixie InRelease must carry a good signature from
# Debian's archive keyring; the Sources index is fetched by the SHA256 that InRelease names
# (the by-hash path, so a mirror's stale plain index cannot get in the way); the orig tarball
# must match the SHA256 in that index. Any mismatch ends the script.
#
# The patches in .ci/qemu-patches/ are applied to the unpacked tarball (patch -p1, no fuzz; one
# that does not apply ends the script): riscv-prctl-icache-flush-ctx.patch makes qemu-riscv64
# accept prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX) as Linux 6.10+ does, so the crate's fence.i path
# runs under the checker (TCG keeps fetch coherent with stores, so accepting it is faithful).
#
# Prints the install prefix on its last line (stdout); progress goes to stderr. The build is
# cached under $QEMU10_CACHE (default ~/.cache/icache) keyed by the package version and a hash
# of the patches (qemu-<version>-p<hash>), so a second run costs nothing and a changed patch
# is never served by an old build.
#   CI_MIRROR=URI   Debian mirror; default: the one this machine's apt uses
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init qemu10
CI_SAY_FD=2

cache=${QEMU10_CACHE:-$HOME/.cache/icache}
mkdir -p "$cache"

# Build tools from Debian (the cross toolchains are ci_setup's business).
ci_apt ninja:ninja-build flex:flex bison:bison xz:xz-utils pkg-config:pkg-config \
  python3:python3 patch:patch libglib2.0-dev
python3 -c 'import venv, ensurepip' 2>/dev/null || ci_apt python3-venv
mirror=$(ci_mirror)

# 1. The signed release file and the source index it names (kept between runs; fetched
# again only when the signed hash changes).
meta=$cache/qemu10-meta
ci_release "$meta" trixie || die "no verified trixie release file"
ci_index "$meta" trixie main/source/Sources || die "no verified trixie Sources index"
stanza=$(ci_stanza "$meta/main_source_Sources" qemu)
version=$(sed -n 's/^Version: //p' <<<"$stanza")
dir=$(sed -n 's/^Directory: //p' <<<"$stanza")
orig=$(awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 }
  s && $3 ~ /\.orig\.tar\.xz$/ { print $1, $3 }' <<<"$stanza")
[ -n "$version" ] && [ -n "$dir" ] && [ -n "$orig" ] || die "no qemu source stanza in trixie"
upstream=${version#*:}
upstream=${upstream%%+*}
case $upstream in 10.*) ;; *) die "trixie's qemu is $version, not 10.x" ;; esac

patches=(.ci/qemu-patches/*.patch)
[ -f "${patches[0]}" ] || die "no patches in .ci/qemu-patches"
# Names and contents both count: renaming, adding or editing a patch gives a new build.
patch_key=$(LC_ALL=C sha256sum "${patches[@]}" | sha256sum | cut -c1-12)
prefix=$cache/qemu-$upstream-p$patch_key
if [ -x "$prefix/bin/qemu-aarch64" ] && [ -x "$prefix/bin/qemu-riscv64" ] &&
  [ -f "$prefix/include/qemu-plugin.h" ] && [ -f "$prefix/.complete" ]; then
  say "cached: $prefix ($version)"
  echo "$prefix"
  exit 0
fi

# 2. The tarball, checked against the signed index.
read -r osha ofile <<<"$orig"
tarball=$cache/$ofile
if ! echo "$osha  $tarball" | sha256sum --quiet -c - >/dev/null 2>&1; then
  say "downloading $ofile ($version)"
  ci_download "$mirror/$dir/$ofile" "$tarball" "$osha" || die "$ofile: download failed or SHA256 mismatch"
fi
say "$ofile verified (SHA256 $osha from the signed trixie index)"

# 3. meson >= 1.5 and pycotap: the orig tarball lacks QEMU's bundled wheels.
venv=$cache/qemu10-venv
if ! "$venv/bin/python3" -c 'import pycotap, mesonbuild' 2>/dev/null; then
  say "python venv with meson and pycotap"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'meson>=1.5,<2' pycotap >&2
fi

# 4. Configure and build.
src=$cache/qemu-$upstream-src
rm -rf "$src" && mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1
for p in "${patches[@]}"; do
  # No fuzz: a hunk that does not match exactly ends the script (the next run unpacks afresh).
  patch -d "$src" -p1 --batch --forward --fuzz=0 -i "$PWD/$p" >&2 || die "$p does not apply to $ofile"
done
build=$src/build
mkdir -p "$build"
say "configuring"
(cd "$build" && PATH="$venv/bin:$PATH" ../configure --prefix="$prefix" --python="$venv/bin/python3" \
  --target-list=aarch64-linux-user,riscv64-linux-user \
  --enable-plugins --disable-system --disable-docs --disable-tools --disable-install-blobs \
  --disable-werror >"$build/configure.log" 2>&1) || { tail -n 30 "$build/configure.log" >&2; die "configure failed"; }
say "building (ninja)"
t=$SECONDS
(cd "$build" && PATH="$venv/bin:$PATH" ninja >"$build/ninja.log" 2>&1) ||
  { tail -n 30 "$build/ninja.log" >&2; die "build failed"; }
(cd "$build" && PATH="$venv/bin:$PATH" ninja install >"$build/install.log" 2>&1) ||
  { tail -n 30 "$build/install.log" >&2; die "install failed"; }
say "built in $((SECONDS - t)) s"
[ -f "$prefix/include/qemu-plugin.h" ] || cp "$src/include/qemu/qemu-plugin.h" "$prefix/include/"
echo "$version p$patch_key" >"$prefix/.complete"
rm -rf "$src"
echo "$prefix"
