# shellcheck shell=bash
# Sourced by the scripts not yet on .ci/lib.sh (icount.sh, disasm.sh, bench.sh): installs the
# cross toolchains, qemu-user and rustup targets when missing (ci_setup in .ci/lib.sh).
# shellcheck source=lib.sh
. .ci/lib.sh
ci_setup
