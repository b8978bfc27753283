#!/usr/bin/env bash
# Builds the icache library in release for target $1 (normal dependencies only: no
# dev-dependencies, unlike `cargo build --example`) and prints the path of its rlib. Used by
# .ci/icount.sh and .ci/disasm.sh to compile small programs against it with rustc; the rlib's
# dependencies are in "$(dirname "$rlib")/deps".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --lib --target "$1" --message-format=json-render-diagnostics |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "icache":
        print(next(f for f in m["filenames"] if f.endswith(".rlib")))'
