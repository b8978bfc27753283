# Sourced by .ci/test: installs what the suite needs on a fresh Debian machine, and nothing
# when it is already there.
need_apt=()
for pair in qemu-aarch64:qemu-user aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu \
    riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf \
    s390x-linux-gnu-gcc:gcc-s390x-linux-gnu aarch64-linux-gnu-objdump:binutils-aarch64-linux-gnu \
    strace:strace gcc:gcc pkg-config:pkg-config python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
for dir in aarch64-linux-gnu:libc6-dev-arm64-cross riscv64-linux-gnu:libc6-dev-riscv64-cross \
    arm-linux-gnueabihf:libc6-dev-armhf-cross s390x-linux-gnu:libc6-dev-s390x-cross; do
  [ -e "/usr/${dir%%:*}/lib/libc.a" ] || need_apt+=("${dir#*:}")
done
for pkg in "${EXTRA_APT[@]:-}"; do
  [ -z "$pkg" ] || dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "== installing: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
rustup target add aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu \
  armv7-unknown-linux-gnueabihf s390x-unknown-linux-gnu >/dev/null
