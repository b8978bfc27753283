#!/usr/bin/env python3
"""Exact instruction accounting for `.ci/icount.sh`: `benches/src/bin/probe.rs` under qemu-user
with the counting plugin, per-call counts from two runs (.ci/qemucount.py: 1 and 65 repetitions,
so start-up and one-time costs cancel). The expected counts are derived here from the CPU
model's line sizes, independently of the crate."""

import argparse
import concurrent.futures
import re
import subprocess
import sys
import tempfile

from checklog import Report
from qemucount import DELTA, IDC_CPUS, RV_PRCTL, Qemu, build_plugins, lines, selftest

# qemu-user 7.2 CPU models and their smallest D- and I-cache lines in bytes, from the CTR_EL0
# values the models report (0x80038003, 0x84448004, 0x86668006); neoverse-n2 (CTR_EL0.IDC = 1,
# so no clean is needed and none may be issued) runs on QEMU 10.
AARCH64_CPUS = [("max", 32, 32), ("cortex-a53", 64, 64), ("a64fx", 256, 256),
                ("neoverse-n2", 64, 64)]
LENS = [1, 4, 31, 32, 33, 64, 100, 4096, 65536]
OFFSETS = [0, 1, 31, 63, 255]
# Extra lengths, at offset 0 only, for the cost table.
TABLE_LENS = [64, 256, 1024, 4096, 16384, 65536]
NRANGES = 4
# (op, its name in labels, extra probe arguments): one range, and NRANGES ranges in one call.
OPS = (("clear_cache", "clear_cache", ()), ("many", f"many({NRANGES})", (str(NRANGES),)))

AARCH64_CLASSES = ["dc_cvau", "dc_civac", "ic_ivau", "dsb_any", "dsb_ish", "isb",
                   "mrs_ctr_el0", "svc"]
RISCV_CLASSES = ["fence_i", "ecall"]


def describe(per, want, classes):
    """'name=got' for every class, with '(want N)' or '(not whole)' on mismatches."""
    parts, ok = [], True
    for name in classes:
        q, r = per[name]
        s = f"{name}={q}" if r == 0 else f"{name}={q}+{r}/{DELTA}"
        if r != 0:
            ok = False
            s += "(not a whole number per call)"
        elif name in want and q != want[name]:
            ok = False
            s += f"(want {want[name]})"
        parts.append(s)
    q, r = per["total"]
    total = f"{q}" if r == 0 else f"{q + r / DELTA:.2f}"
    return ok, " ".join(parts) + f" | total {total}/call"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="where to build the plugins")
    for name in ("probe-aarch64", "probe-riscv64", "selftest-aarch64", "selftest-riscv64"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    opt = ap.parse_args()
    report = Report("icount")
    try:
        plugin, qemu10, plugin10 = build_plugins(opt.out)
    except subprocess.CalledProcessError as e:
        report.check(False, f"building the plugins or QEMU 10: {e}")
        return report.finish()

    # The counter itself first: hand-written programs with known counts.
    selftest(report, plugin, "aarch64", opt.selftest_aarch64,
             {"total": 23, "dc_cvau": 3, "dc_civac": 1, "ic_ivau": 3, "dsb_any": 2,
              "dsb_ish": 1, "isb": 1, "mrs_ctr_el0": 1, "svc": 1})
    rv = {"total": 11, "fence_i": 2, "ecall": 1}
    selftest(report, plugin, "riscv64", opt.selftest_riscv64, rv)
    selftest(report, plugin10, "riscv64", opt.selftest_riscv64, rv, f"{qemu10}/bin/qemu-riscv64",
             " (QEMU 10 build)")

    with tempfile.TemporaryDirectory(prefix="icount-") as tmp:
        runner = Qemu(plugin, {"aarch64": opt.probe_aarch64, "riscv64": opt.probe_riscv64},
                      tmp, qemu10, plugin10, timeout=120)
        jobs = []  # (label, arch, cpu, op, len, offset, extra, expected-fn)
        configs = [(l, o) for l in LENS for o in OFFSETS]
        configs += [(l, 0) for l in TABLE_LENS if (l, 0) not in configs]
        configs += [(0, 0)]
        for cpu, dline, iline in AARCH64_CPUS:
            idc = cpu in IDC_CPUS
            for op, name, extra in OPS:
                n = NRANGES if extra else 1
                for length, offset in configs:
                    d, i = lines(offset, length, dline) * (not idc), lines(offset, length, iline)
                    some = length > 0
                    jobs.append((f"aarch64/{cpu} {name} len={length} off={offset}", "aarch64",
                                 cpu, op, length, offset, extra,
                                 {"dc_cvau": n * d, "ic_ivau": n * i, "dc_civac": 0,
                                  "dsb_ish": 2 * some, "dsb_any": 2 * some, "isb": 1 * some,
                                  "mrs_ctr_el0": 0, "svc": 0}))
            jobs.append((f"aarch64/{cpu} many(0 ranges)", "aarch64", cpu, "many", 64, 0,
                         ("0",), {c: 0 for c in AARCH64_CLASSES}))
            jobs.append((f"aarch64/{cpu} flush_mt", "aarch64", cpu, "flush_mt", 0, 0, (),
                         {"svc": 1, "dc_cvau": 0, "ic_ivau": 0, "dc_civac": 0,
                          "mrs_ctr_el0": 0}))
        # None: the kernel refuses the prctl, one system call per call and per batch; RV_PRCTL:
        # it accepted the prctl, one fence.i per call and per batch, no system call.
        for model in (None, RV_PRCTL):
            where = f"riscv64/{model}" if model else "riscv64"
            for length, offset in configs:
                some = int(length > 0)
                want = {"ecall": 0, "fence_i": some} if model else {"ecall": some, "fence_i": 0}
                for op, name, extra in OPS:
                    jobs.append((f"{where} {name} len={length} off={offset}", "riscv64", model,
                                 op, length, offset, extra, want))
            jobs.append((f"{where} flush_mt", "riscv64", model, "flush_mt", 0, 0, (),
                         {"ecall": 1, "fence_i": 0}))

        def measure(job):
            label, arch, cpu, op, length, offset, extra, want = job
            try:
                return runner.per_call(arch, cpu, [op, str(length), str(offset), "{reps}",
                                                   *extra])
            except Exception as e:  # reported as a failed check, not a crash
                return e

        with concurrent.futures.ThreadPoolExecutor(max_workers=opt.jobs) as pool:
            results = list(pool.map(measure, jobs))

        table = {}
        whole = {}  # (arch, cpu) -> whole-process counts of the watched class, every run
        lines_seen = {}  # cpu -> (D-line, I-line) the crate reported
        for job, res in zip(jobs, results):
            label, arch, cpu, op, length, offset, extra, want = job
            if isinstance(res, Exception):
                report.check(False, f"{label}: {res}")
                continue
            per, first, second, stdout = res
            classes = AARCH64_CLASSES if arch == "aarch64" else RISCV_CLASSES
            ok, text = describe(per, want, classes)
            report.check(ok, f"{label}: {text}")
            if op != "flush_mt" and offset == 0 and extra in ((), (str(NRANGES),)):
                q, r = per["total"]
                table[(arch, cpu, op, length)] = q + r / DELTA
            watched = "mrs_ctr_el0" if arch == "aarch64" else "fence_i"
            whole.setdefault((arch, cpu), []).extend((first[watched], second[watched]))
            m = re.search(r"dcache_line: Some\((\d+)\), icache_line: Some\((\d+)\)", stdout)
            if arch == "aarch64" and cpu not in lines_seen:
                lines_seen[cpu] = (int(m.group(1)), int(m.group(2))) if m else None

        # Whole-process checks over every run: CTR_EL0 read exactly once per process, no
        # fence.i anywhere in user space, and the crate sees the model's line sizes.
        for (arch, cpu), counts in whole.items():
            if cpu == RV_PRCTL:
                continue  # fence.i is this model's clear_cache: counted per call above
            want = 1 if arch == "aarch64" else 0
            what = "mrs ctr_el0" if arch == "aarch64" else "fence.i"
            spread = {c: counts.count(c) for c in sorted(set(counts))}
            report.check(set(counts) == {want}, f"{arch}/{cpu or 'rv64'} {what} per process "
                         f"run, {len(counts)} runs: {spread} (count: runs), want {want} in each")
        for cpu, dline, iline in AARCH64_CPUS:
            seen = lines_seen.get(cpu)
            report.check(seen == (dline, iline),
                         f"aarch64/{cpu} cache_info lines {seen}, model has {(dline, iline)}")

    print("\nTotal instructions per call at offset 0, the probe's loop included (the len 0 column"
          "\nis that loop, black_box and the crate's return for an empty range):")
    models = [("aarch64", c) for c, _, _ in AARCH64_CPUS] + [("riscv64", None), ("riscv64", RV_PRCTL)]
    lens = sorted({0, *TABLE_LENS})
    print("  %-32s" % "model / op" + "".join("%10s" % (f"{l} B" if l else "len 0") for l in lens))
    for op in ("clear_cache", "many"):
        for arch, cpu in models:
            row = [table.get((arch, cpu, op, l)) for l in lens]
            name = f"{arch}/{cpu or 'rv64'} {op}" + (f"({NRANGES})" if op == "many" else "")
            print("  %-32s" % name + "".join("%10s" % ("-" if v is None else f"{v:g}")
                                               for v in row))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
