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

FINDING_CLASSES = [
    "no-clean", "clean-not-completed", "store-not-completed", "no-invalidate",
    "invalidate-before-clean", "invalidate-not-completed", "no-context-sync-writer",
    "no-context-sync-other", "no-fence-i", "fence-i-other-hart",
]
WARNING_CLASSES = ["fence-i-without-prctl"]

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
        proc = {"file": f, "summary": None, "findings": {}, "warnings": {}, "first": []}
        with open(f) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed process
                kind = rec.get("kind")
                if kind == "summary":
                    proc["summary"] = rec
                elif kind in ("finding", "warning"):
                    bucket = proc["findings"] if kind == "finding" else proc["warnings"]
                    bucket[rec["class"]] = bucket.get(rec["class"], 0) + 1
                    if kind == "finding" and len(proc["first"]) < 3:
                        proc["first"].append(rec)
        procs.append(proc)
    return procs


def total(procs):
    out = {"processes": len(procs), "unfinished": 0, "findings": {}, "warnings": {},
           "checked": 0, "cmodx": 0}
    for p in procs:
        for key in ("findings", "warnings"):
            for c, n in p[key].items():
                out[key][c] = out[key].get(c, 0) + n
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
    nf = sum(t["findings"].values())
    nw = sum(t["warnings"].values())
    print(f"coherence: {t['processes']} processes, {nf} findings ({fmt_classes(t['findings'])}), "
          f"{nw} warnings ({fmt_classes(t['warnings'])}), {t['checked']} executions of written "
          f"code checked, {t['cmodx']} under concurrent modification (allowed)")
    if not procs:
        print("coherence: no process reported: the checker did not run")
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
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for cpu, arch, what in MODELS:
            binary = args.aarch64 if arch == "aarch64" else args.riscv64
            table = EXPECT_AARCH64 if arch == "aarch64" else EXPECT_RISCV64
            for mode, expect in table.items():
                out = os.path.join(tmp, f"{cpu}-{mode}")
                os.makedirs(out)
                status, t, text = run_checked(args.run, cpu, out, [binary, mode])
                got = set(t["findings"])
                warn = set(t["warnings"])
                if arch == "aarch64":
                    idc = cpu == "neoverse-n2"
                    want, want_warn = (expect[1] if idc else expect[0]), set()
                else:
                    want, want_warn = expect
                # The program exits 1 only on findings (the checker's status), 0 otherwise.
                ok = got == want and warn == want_warn and status == (1 if want else 0) \
                    and t["processes"] >= 1 and not t["unfinished"]
                if mode.startswith("cmodx-branch") and t["cmodx"] == 0:
                    ok = False  # the rule under test must actually have been exercised
                line = (f"{cpu:12} {mode:25} findings {fmt_classes(t['findings']):40} "
                        f"warnings {fmt_classes(t['warnings'])}")
                if ok:
                    passed += 1
                    print(f"ok   {line}")
                else:
                    failed += 1
                    print(f"FAIL {line}  (expected {sorted(want) or 'none'}, warnings "
                          f"{sorted(want_warn) or 'none'}, exit {status})")
                    print("     " + text.strip().replace("\n", "\n     ")[-2000:])
    print(f"coherence selftest: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("dir")
    s = sub.add_parser("selftest")
    s.add_argument("--run", required=True)
    s.add_argument("--aarch64", required=True)
    s.add_argument("--riscv64", required=True)
    args = ap.parse_args()
    return {"summarize": summarize, "selftest": selftest}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
