#!/usr/bin/env python3
"""Reads what the coherence checker (tests/qemu-plugin/coherence.c) wrote, and drives it.

  coherence.py summarize DIR            one line per process and a total; exit 1 on findings,
                                        or when a process left no summary (fail closed)
  coherence.py selftest --run RUNNER --aarch64 BIN --riscv64 BIN
                                        every self-test mode on every model, against EXPECT
  coherence.py peers --run RUNNER --aarch64 BIN --riscv64 BIN [--markdown FILE]
                                        the peers table (implementation x model x scenario)

RUNNER is .ci/coherence-run. Every command ends with "N passed, M failed" where it checks.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

from checklog import Report

# Models: (name, arch, what it is). IDC/DIC and line sizes come from the model's CTR_EL0.
MODELS = [
    ("max", "aarch64", "32-byte lines"),
    ("cortex-a53", "aarch64", "64-byte lines"),
    ("a64fx", "aarch64", "256-byte lines"),
    ("neoverse-n2", "aarch64", "64-byte lines, IDC=1"),
    ("rv64", "riscv64", "riscv64"),
]


def read_dir(path):
    """Per process: {'pid', 'summary' or None, 'findings': {class: n}, 'warnings': {...}}."""
    procs = []
    for f in sorted(glob.glob(os.path.join(path, "coherence-*.jsonl"))):
        proc = {"file": f, "summary": None, "findings": {}, "warnings": {}, "first": [],
                "no_ic": 0, "with_ic": 0}
        with open(f) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # an empty line, or one cut short by a killed process
                kind = rec.get("kind")
                if kind == "summary":
                    proc["summary"] = rec
                elif kind in ("finding", "warning"):
                    bucket = proc["findings"] if kind == "finding" else proc["warnings"]
                    bucket[rec["class"]] = bucket.get(rec["class"], 0) + 1
                    if "ic_ivau_seen" in rec:
                        proc["with_ic" if rec["ic_ivau_seen"] else "no_ic"] += 1
                    if kind == "finding" and len(proc["first"]) < 3:
                        proc["first"].append(rec)
        procs.append(proc)
    return procs


def total(procs):
    out = {"processes": len(procs), "unfinished": 0, "findings": {}, "warnings": {},
           "checked": 0, "cmodx": 0, "no_ic": 0, "with_ic": 0}
    for p in procs:
        for key in ("findings", "warnings"):
            for c, n in p[key].items():
                out[key][c] = out[key].get(c, 0) + n
        out["no_ic"] += p["no_ic"]
        out["with_ic"] += p["with_ic"]
        if p["summary"] is None:
            out["unfinished"] += 1
        else:
            out["checked"] += p["summary"].get("checked_insns", 0)
            out["cmodx"] += p["summary"].get("cmodx", 0)
    return out


def fmt_classes(d):
    return " ".join(f"{c}={n}" for c, n in sorted(d.items())) or "none"


def summarize(args):
    procs = read_dir(args.dir)
    t = total(procs)
    for p in procs:
        s = p["summary"]
        head = f"pid {s['pid']}" if s else os.path.basename(p["file"])
        nf = sum(p["findings"].values())
        print(f"coherence: {head}: {nf} findings ({fmt_classes(p['findings'])})"
              + ("" if s else " -- no summary: the process did not exit normally"))
        for rec in p["first"]:
            print(f"  {rec['class']}: thread {rec['thread']} ran {rec['pc']}, stored by thread "
                  f"{rec.get('store_thread')} at pc {rec.get('store_pc')}; missing: {rec['missing']}")
    nf, nw = sum(t["findings"].values()), sum(t["warnings"].values())
    print(f"coherence: {t['processes']} processes, {nf} findings ({fmt_classes(t['findings'])}), "
          f"{nw} warnings ({fmt_classes(t['warnings'])}), {t['checked']} executions of written "
          f"code checked, {t['cmodx']} under concurrent modification (allowed)")
    if not procs:
        print("coherence: no process reported: the checker did not run")
        return 1
    if t["checked"] < args.min_checked:
        print(f"coherence: only {t['checked']} executions of written code were checked "
              f"(at least {args.min_checked} expected): nothing was under test")
        return 1
    if t["unfinished"]:
        print(f"coherence: {t['unfinished']} processes left no summary")
        return 1
    return 1 if nf else 0


def run_checked(runner, cpu, out, argv):
    """Runs argv under the checker; returns (exit status, totals)."""
    cmd = ["bash", runner, "--cpu", cpu, "--out", out, "--show", "0", "--"] + argv
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, total(read_dir(out)), r.stdout


# Self-test expectations: mode -> (findings on an IDC=0 model, findings with IDC=1, warnings).
EXPECT_AARCH64 = {
    "full": (set(), set()),
    "full-mt": (set(), set()),
    "no-clean": ({"no-clean"}, set()),
    "no-dsb": ({"no-clean"}, {"store-not-completed"}),
    "no-dsb-between": ({"invalidate-before-clean"}, {"invalidate-before-clean"}),
    "no-invalidate": ({"no-invalidate"}, {"no-invalidate"}),
    "no-dsb-after-invalidate": ({"invalidate-not-completed"}, {"invalidate-not-completed"}),
    "double-stride": ({"no-clean"}, {"no-invalidate"}),
    "no-isb": ({"no-context-sync-writer"}, {"no-context-sync-writer"}),
    "other-thread-no-sync": ({"no-context-sync-other"}, {"no-context-sync-other"}),
    "store-after-flush": ({"no-clean"}, {"store-not-completed"}),
    "cmodx-branch": (set(), set()),
    "cmodx-data": ({"no-clean"}, {"store-not-completed"}),
}
EXPECT_RISCV64 = {
    "full": (set(), {"fence-i-without-prctl"}),
    "prctl-full": (set(), set()),
    "prctl-thread-full": (set(), set()),
    "prctl-refused": (set(), {"fence-i-without-prctl"}),
    "prctl-off": (set(), {"fence-i-without-prctl"}),
    "flush-all-mt": (set(), set()),
    "membarrier-mt": (set(), set()),
    "flush-local-same-thread": (set(), set()),
    "no-fence": ({"no-fence-i"}, set()),
    "flush-local-other-thread": ({"fence-i-other-hart"}, set()),
    "fence-i-other-thread": ({"fence-i-other-hart"}, {"fence-i-without-prctl"}),
    "store-after-flush": ({"no-fence-i"}, set()),
    "cmodx-branch": (set(), set()),
    "cmodx-torn": ({"no-fence-i"}, set()),
}


def selftest(args):
    report = Report("coherence selftest")
    with tempfile.TemporaryDirectory() as tmp:
        for cpu, arch, what in MODELS:
            binary, table = getattr(args, arch), EXPECT_AARCH64 if arch == "aarch64" else EXPECT_RISCV64
            for mode, expect in table.items():
                out = os.path.join(tmp, f"{cpu}-{mode}")
                os.makedirs(out)
                status, t, text = run_checked(args.run, cpu, out, [binary, mode])
                got, warn = set(t["findings"]), set(t["warnings"])
                # AArch64: (findings without IDC, with IDC = 1); RISC-V: (findings, warnings).
                want, want_warn = (expect[cpu == "neoverse-n2"], set()) if arch == "aarch64" \
                    else expect
                # The program exits 1 only on findings (the checker's status), 0 otherwise.
                ok = got == want and warn == want_warn and status == (1 if want else 0) \
                    and t["processes"] >= 1 and not t["unfinished"]
                if mode.startswith("cmodx-branch") and t["cmodx"] == 0:
                    ok = False  # the rule under test must actually have been exercised
                line = (f"{cpu:12} {mode:25} findings {fmt_classes(t['findings']):40} "
                        f"warnings {fmt_classes(t['warnings'])}")
                report.check(ok, line if ok else f"{line}  (expected {sorted(want) or 'none'}, "
                             f"warnings {sorted(want_warn) or 'none'}, exit {status})")
                if not ok:
                    print("     " + text.strip().replace("\n", "\n     ")[-2000:])
    print(f"coherence selftest: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


IMPLS = ["icache", "wasmtime50", "wasmtime48", "wasmtime34", "clear-cache", "dynasmrt", "libgcc",
         "none"]
IMPL_NAMES = {
    "icache": "icache", "wasmtime50": "wasmtime-internal-jit-icache-coherence 50.0.1",
    "wasmtime48": "wasmtime-internal-jit-icache-coherence 48.0.8",
    "wasmtime34": "wasmtime-jit-icache-coherence 34.0.2", "clear-cache": "clear-cache 0.1.3",
    "dynasmrt": "dynasmrt 5.1 `cache_control`", "libgcc": "libgcc `__clear_cache`",
    "none": "no flush at all",
}
SCENARIOS = ["one", "two"]
SHORT = {
    "no-clean": "no clean", "clean-not-completed": "clean incomplete",
    "store-not-completed": "store incomplete", "no-invalidate": "no ic",
    "invalidate-before-clean": "ic before clean", "invalidate-not-completed": "ic incomplete",
    "no-context-sync-writer": "no isb (writer)", "no-context-sync-other": "no sync (reader)",
    "no-fence-i": "no fence.i", "fence-i-other-hart": "other hart only",
}


def cell_text(r):
    if r["status"] != "ran":
        return {"unsupported": "n/a", "error": "error"}[r["status"]]
    f = r["t"]["findings"]
    if not f:
        text = "0"
    else:
        text = ", ".join(f"{SHORT.get(c, c)} {n}" for c, n in sorted(f.items()))
        no_ic, with_ic = r["t"]["no_ic"], r["t"]["with_ic"]
        if no_ic and with_ic:
            text += f" (no ic ivau on {no_ic} of {no_ic + with_ic})"
    if r["t"]["warnings"]:
        text += " + warning: fence.i without prctl"
    return text


SECTION = """<!-- coherence:begin -->
## Stale code under the coherence checker

Generated by `bash .ci/coherence.sh` (`COHERENCE_ONLY=peers`, then
`python3 .ci/coherence.py peers ... --update BENCHMARKS.md`). Each implementation's own calls
make the code coherent in `benches/coherence-peers`: **1 thread** writes a 1 KiB function (256
instructions, starting mid-line) into an RWX mapping, makes it coherent, runs it, and patches it
in place three times; **2 threads**: a reader that makes no system call runs each generation
after the writer publishes it with a release store (the writer calls the implementation's
cross-thread flush where it has one). The checker (`tests/qemu-plugin/coherence.c`, QEMU 10)
counts executions of instruction words whose newest version the architecture does not guarantee
to the executing thread, once per stored version: 1024 = every word of all four generations,
768 = every word of the three patched ones. `0` is no finding.

TABLE

How to read the classes: *no clean*: no `dc cvau` of the line after the store; *store
incomplete* (IDC=1 core): no `dsb` between the store and the `ic ivau`/execution; *ic before
clean*: `ic ivau` issued before the clean or store completed; *no sync (reader)*: the reader
thread had no context synchronisation (`isb`, exception return, membarrier) after the
invalidation; *no fence.i*: no `fence.i` or flush on any hart after the store; *other hart
only*: a flush ran, but only on the writer's hart (`riscv_flush_icache` flags 1).

What it shows, against the known defects (`../shared/REFERENCE.md`):
- wasmtime 34 cleans and invalidates nothing on AArch64 (it relies on `mprotect`, which does
  neither); every model flags it.
- wasmtime 48 skips the clean and walks `ic ivau` at a fixed 64-byte stride: on 32-byte lines
  (`max`) half of the flagged words also had no `ic ivau` ("no ic ivau on 512 of 1024"). On the
  IDC=1 core it is still flagged: it issues `ic ivau` with no `dsb` after the code's stores, so
  the invalidation may run before the new bytes are visible (the Arm ARM's sequence has the
  `dsb ish` there even when IDC makes the clean unnecessary).
- wasmtime 50 is right on AArch64. On RISC-V it passes flags 1 and its `pipeline_flush_mt`
  does nothing, so the reader thread is flagged; so are wasmtime 34 and 48 (same flags).
- clear-cache, dynasmrt and libgcc are right for the calling thread on AArch64 but have no
  cross-thread flush: every reader thread is flagged. On RISC-V libgcc's `__clear_cache` is
  empty (flagged everywhere) and dynasmrt's `prepare_for_execution` calls
  `__riscv_flush_icache(.., 1)` (this hart only: the reader is flagged).
- **Where the issue's expectation was wrong:** it expected every RISC-V implementation without a
  cross-thread flush to be flagged with two threads. clear-cache 0.1.3 has no cross-thread call,
  but its `clear_cache` on RISC-V is `riscv_flush_icache(start, end, 0)` (read in its source),
  which flushes every hart running the process, as icache's does; so its reader is correctly
  clean. The README's comparison said "–" for clear-cache on RISC-V; it now says flags 0.

Checks on this table (each must hold for the stage to pass): CHECKS
<!-- coherence:end -->"""


def update_section(path, table, checks):
    begin, end = "<!-- coherence:begin -->", "<!-- coherence:end -->"
    passed = sum(1 for _, ok in checks if ok)
    text = SECTION.replace("TABLE", table).replace(
        "CHECKS", f"{passed} of {len(checks)} passed.")
    with open(path) as fh:
        old = fh.read()
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as fh:
        fh.write(new)


def peers(args):
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cpu, arch, what in MODELS:
            binary = getattr(args, arch)
            for impl in IMPLS:
                for sc in SCENARIOS:
                    out = os.path.join(tmp, f"{cpu}-{impl}-{sc}")
                    os.makedirs(out)
                    status, t, text = run_checked(args.run, cpu, out, [binary, impl, sc])
                    if status == 2:
                        st = "unsupported"
                    elif status in (0, 1) and t["processes"] and not t["unfinished"] \
                            and ("ok " in text or status == 1):
                        st = "ran"
                    else:
                        st = "error"
                        print(f"peers: {impl} {sc} on {cpu}: exit {status}\n{text[-1500:]}")
                    results[(cpu, impl, sc)] = {"status": st, "t": t}
                    print(f"peers: {cpu:12} {impl:12} {sc}: {cell_text(results[(cpu, impl, sc)])}")

    def flagged(cpu, impl, sc, want=True):
        r = results[(cpu, impl, sc)]
        return r["status"] == "ran" and bool(r["t"]["findings"]) == want

    def clean(cpu, impl, sc):
        return flagged(cpu, impl, sc, False)

    # What the peers are known to get wrong (REFERENCE.md, issue 8): each must show.
    aarch64 = [m for m, a, _ in MODELS if a == "aarch64"]
    checks = []
    for cpu, arch, _ in MODELS:
        for sc in SCENARIOS:
            checks.append((f"icache has no finding ({cpu}, {sc})", clean(cpu, "icache", sc)))
            checks.append((f"no flush is flagged ({cpu}, {sc})", flagged(cpu, "none", sc)))
    checks += [(f"wasmtime 34 is flagged ({cpu}, {sc})", flagged(cpu, "wasmtime34", sc))
               for cpu in aarch64 for sc in SCENARIOS]
    checks += [(f"wasmtime 48 misses the clean ({cpu})",
                "no-clean" in results[(cpu, "wasmtime48", "one")]["t"]["findings"])
               for cpu in ("max", "cortex-a53", "a64fx")]
    r = results[("max", "wasmtime48", "one")]["t"]
    checks.append(("wasmtime 48's 64-byte stride skips every other 32-byte line (max)",
                   r["no_ic"] > 0 and r["with_ic"] > 0))
    r = results[("neoverse-n2", "wasmtime48", "one")]["t"]["findings"]
    checks.append(("wasmtime 48 issues ic ivau before the stores complete on an IDC=1 core "
                   "(no dsb before it)", "invalidate-before-clean" in r))
    for cpu in aarch64:
        for sc in SCENARIOS:
            checks.append((f"wasmtime 50 has no finding ({cpu}, {sc})",
                           clean(cpu, "wasmtime50", sc)))
        for impl in ("clear-cache", "dynasmrt", "libgcc"):
            checks.append((f"{impl} makes no cross-thread flush: flagged with two threads ({cpu})",
                           flagged(cpu, impl, "two")))
    checks += [(f"libgcc is flagged on riscv64 ({sc})", flagged("rv64", "libgcc", sc))
               for sc in SCENARIOS]
    # RISC-V, two threads: flags 1 (this hart only) or no flush at all is flagged; clear-cache
    # passes flags 0 (every hart), so, like icache, it is not (issue 8 expected otherwise:
    # BENCHMARKS.md says why).
    checks += [(f"{impl} is flagged with two threads on riscv64", flagged("rv64", impl, "two"))
               for impl in ("wasmtime34", "wasmtime48", "wasmtime50", "dynasmrt", "libgcc", "none")]
    checks.append(("clear-cache (flags 0) has no finding with two threads on riscv64",
                   clean("rv64", "clear-cache", "two")))
    passed = sum(1 for _, ok in checks if ok)
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")

    if args.markdown:
        cols = [(cpu, sc) for cpu, _, _ in MODELS for sc in SCENARIOS]
        lines = ["| implementation | " + " | ".join(
            f"{cpu} {'1 thread' if sc == 'one' else '2 threads'}" for cpu, sc in cols) + " |",
                 "|---" * (len(cols) + 1) + "|"]
        for impl in IMPLS:
            lines.append(f"| {IMPL_NAMES[impl]} | " + " | ".join(
                cell_text(results[(cpu, impl, sc)]) for cpu, sc in cols) + " |")
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        if args.update:
            update_section(args.update, "\n".join(lines), checks)
        with open(args.markdown.replace(".md", ".json"), "w") as fh:
            json.dump({f"{c}/{i}/{s}": {"status": r["status"], "findings": r["t"]["findings"],
                                       "warnings": r["t"]["warnings"], "no_ic": r["t"]["no_ic"],
                                       "with_ic": r["t"]["with_ic"]}
                       for (c, i, s), r in results.items()}, fh, indent=1, sort_keys=True)
    print(f"coherence peers: {passed} passed, {len(checks) - passed} failed")
    return 0 if passed == len(checks) else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("dir")
    s.add_argument("--min-checked", type=int, default=0)
    for cmd in ("selftest", "peers"):
        s = sub.add_parser(cmd)
        for name in ("run", "aarch64", "riscv64"):
            s.add_argument(f"--{name}", required=True)
    s.add_argument("--markdown")
    s.add_argument("--update", help="rewrite the checker's section of this file (BENCHMARKS.md)")
    args = ap.parse_args()
    return {"summarize": summarize, "selftest": selftest, "peers": peers}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
