#!/usr/bin/env python3
"""Writes BENCHMARKS.md and benches/instructions.svg for `.ci/bench.sh`, from its two sources
(criterion's JSON under target/criterion; `benches/src/bin/peers_probe.rs` counted under
qemu-user by .ci/qemucount.py). The `none` implementation (the same probe loop calling an empty
function) is subtracted from every total, so "total" is the instructions the call adds.

Only the standard library: the chart is SVG written by hand.
"""

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile

from qemucount import DELTA, IDC_CPUS, REPS, RV_PRCTL, Qemu, build_plugins, lines

# (model, line bytes): CTR_EL0 Dmin = Imin on each; neoverse-n2 (IDC = 1) runs on QEMU 10.
AARCH64_CPUS = [("max", 32), ("cortex-a53", 64), ("a64fx", 256), ("neoverse-n2", 64)]
# RISC-V: Debian's qemu-user refuses the fence.i prctl (as Linux < 6.10 does); RV_PRCTL is the
# QEMU 10 built here, which accepts it (as Linux 6.10+ does).
RISCV_MODELS = [None, RV_PRCTL]
SIZES = [64, 256, 1024, 4096, 16384, 65536]
BATCH_N, BATCH_LEN = 1000, 256
PUBLISH_LEN = 256
IMPLS = ["icache", "wasmtime34", "wasmtime48", "wasmtime50", "clear-cache", "dynasmrt", "libgcc"]
# Peers that issue the whole Arm ARM sequence (clean, dsb, invalidate, dsb, isb) per line.
FULL_SEQUENCE = ["wasmtime50", "clear-cache", "dynasmrt", "libgcc"]
# icache: one clear_cache_many call; icache-slices: one clear_cache_slices call; the rest 1000 calls.
BATCH_IMPLS = ["icache", "icache-slices", "icache-single"] + IMPLS[1:]
FLUSH_IMPLS = ["icache", "wasmtime34", "wasmtime48", "wasmtime50", "raw"]
A64_CLASSES = ["dc_cvau", "dc_civac", "ic_ivau", "dsb_any", "isb", "mrs_ctr_el0", "svc"]
COLORS = {"icache": "#d62728", "wasmtime34": "#7f7f7f", "wasmtime48": "#ff7f0e",
          "wasmtime50": "#8c564b", "clear-cache": "#2ca02c", "dynasmrt": "#1f77b4",
          "libgcc": "#9467bd"}


def log(msg):
    print(f"== bench: {msg}", flush=True)


def bold(imp):
    return f"**{imp}**" if imp == "icache" else imp


def measure(qemu, jobs):
    keys = []
    models = [("aarch64", c) for c, _ in AARCH64_CPUS]
    models += [("riscv64", m) for m in RISCV_MODELS] + [("x86_64", None)]
    for arch, cpu in models:
        keys += [(arch, cpu, imp, "clear", size)
                 for imp in ["none", "icache-discard"] + IMPLS for size in SIZES]
        keys += [(arch, cpu, imp, "batch", BATCH_LEN) for imp in ["none"] + BATCH_IMPLS]
        keys += [(arch, cpu, imp, "flush", 0) for imp in ["none"] + FLUSH_IMPLS]
        if arch == "riscv64":
            keys += [(arch, cpu, imp, "publish", PUBLISH_LEN) for imp in ["none"] + IMPLS]
    log(f"{len(keys)} configurations, 2 qemu runs each (more on QEMU 10), {jobs} at a time")

    def one(key):
        arch, cpu, imp, op, length = key
        per = qemu.per_call(arch, cpu, [imp, op, str(length), "{reps}"])[0]
        if any(r for _, r in per.values()):
            raise RuntimeError(f"{key}: not a whole number of instructions per call: {per}")
        return {k: q for k, (q, _) in per.items()}

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        results = dict(zip(keys, pool.map(one, keys)))
    # Net of the probe's own loop and call.
    for key, per in results.items():
        arch, cpu, imp, op, length = key
        per["net"] = per["total"] - results[(arch, cpu, "none", op, length)]["total"]
    return results


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def criterion(root):
    """{(group, function, value): estimates} from criterion's JSON, and under "paired" the
    interleaved flush rounds the bench writes (`paired_flush` in benches/benches/clear_cache.rs)."""
    out = {}
    paired = os.path.join(root, "flush_paired.json")
    if os.path.exists(paired):
        with open(paired) as f:
            out["paired"] = json.load(f)
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        out[(b["group_id"], b["function_id"], b.get("value_str"))] = e
    return out


def fmt_ns(ns):
    if ns < 1000:
        return f"{ns:.2f} ns" if ns < 10 else f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def timing(est, with_ci=True):
    """Criterion's median (robust to the shared machine's outliers), with its 95% interval."""
    m = est["median"]
    s = fmt_ns(m["point_estimate"])
    if with_ci:
        ci = m["confidence_interval"]
        s += f" ({fmt_ns(ci['lower_bound'])} – {fmt_ns(ci['upper_bound'])})"
    return s


def lines_touched(length, line, count=1):
    return count * lines(0, length, line)


def per_line(results, cpu, imp):
    """Instructions per extra cache line: the slope from 16 KiB to 64 KiB."""
    line = dict(AARCH64_CPUS)[cpu]
    big, small = (results[("aarch64", cpu, imp, "clear", s)]["net"] for s in (65536, 16384))
    return (big - small) / (lines_touched(65536, line) - lines_touched(16384, line))


def per_line_table(results):
    """Per-line cost of every implementation on every AArch64 model."""
    t = ["### Instructions per cache line (AArch64)\n",
         "The slope of `total` from 16 KiB to 64 KiB: what one more line costs, clean and "
         "invalidate together (the invalidate alone where CTR_EL0.IDC = 1 lets it skip the "
         "clean). A per-line loop needs at least one maintenance instruction and one `add` "
         "per line per loop.\n",
         "| model | " + " | ".join(IMPLS) + " |", "|---|" + "---:|" * len(IMPLS)]
    for cpu, _ in AARCH64_CPUS:
        t.append(f"| {cpu} | " + " | ".join(f"{per_line(results, cpu, i):.3g}" for i in IMPLS)
                 + " |")
    return "\n".join(t) + "\n"


def chart(results, path):
    """Two rows of panels, one panel per AArch64 model and one for RISC-V: instructions per
    clear_cache call against bytes (log-log), and below, each implementation's count relative to
    icache's (icache = 1)."""
    panels = [("aarch64", c, f"AArch64 -cpu {c} ({l} B lines)") for c, l in AARCH64_CPUS]
    panels.append(("riscv64", None, "RISC-V 64 (prctl refused)"))
    pw, ph, ml, mt, gap = 300, 260, 62, 40, 70
    width, height = ml + len(panels) * pw + 10, mt + 2 * ph + gap + 70
    xmin, xmax = SIZES[0], SIZES[-1]
    rows = [  # (top, y of a value, ticks as (value, label), title of the y axis)
        (mt, lambda y: math.log10(max(y, 1)) / 5, [(10 ** e, f"1e{e}") for e in range(6)],
         "instructions per call (log; 0 drawn at 1)"),
        (mt + ph + gap, lambda y: min(y, 4) / 4, [(v, f"{v:g}×") for v in (0, 0.5, 1, 2, 3, 4)],
         "relative to icache (above 4 drawn at 4)"),
    ]

    def sx(i, x):
        return ml + i * pw + (math.log10(x) - math.log10(xmin)) / (
            math.log10(xmax) - math.log10(xmin)) * (pw - 30)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">Instructions per '
           f'clear_cache call (net of the probe loop) against range size; below, relative to '
           f'icache</text>']
    for r, (top, fy, ticks, ytitle) in enumerate(rows):
        def sy(y):
            return top + ph - fy(y) * ph
        svg.append(f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
                   f'text-anchor="middle">{ytitle}</text>')
        for i, (arch, cpu, title) in enumerate(panels):
            x0, x1 = sx(i, xmin), sx(i, xmax)
            svg.append(f'<text x="{(x0 + x1) / 2}" y="{top - 8}" text-anchor="middle">{title}'
                       '</text>')
            for v, label in ticks:
                y = sy(v)
                stroke = "#999" if r == 1 and v == 1 else "#ddd"
                svg.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="{stroke}"/>')
                if i == 0:
                    svg.append(f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end">{label}</text>')
            for sz in SIZES:
                x = sx(i, sz)
                svg.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + ph}" stroke="#eee"/>')
                label = f"{sz // 1024}K" if sz >= 1024 else str(sz)
                svg.append(f'<text x="{x}" y="{top + ph + 14}" text-anchor="middle">{label}'
                           '</text>')
            svg.append(f'<rect x="{x0}" y="{top}" width="{x1 - x0}" height="{ph}" fill="none" '
                       f'stroke="#444"/>')
            for imp in IMPLS[1:] + IMPLS[:1]:  # icache last, on top
                net = lambda imp, sz: results[(arch, cpu, imp, "clear", sz)]["net"]
                val = (lambda sz: net(imp, sz)) if r == 0 else (
                    lambda sz: net(imp, sz) / max(net("icache", sz), 1))
                pts = [(sx(i, sz), sy(val(sz))) for sz in SIZES]
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                dash = ' stroke-dasharray="5,3"' if imp != "icache" else ""
                w = 2.5 if imp == "icache" else 1.5
                svg.append(f'<polyline points="{d}" fill="none" stroke="{COLORS[imp]}" '
                           f'stroke-width="{w}"{dash}/>')
                for x, y in pts:
                    svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                               f'fill="{COLORS[imp]}"/>')
    svg.append(f'<text x="{width / 2}" y="{height - 30}" text-anchor="middle">bytes per call '
               '(log)</text>')
    lx = ml
    for imp in IMPLS:
        y = height - 10
        svg.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 24}" y2="{y - 4}" '
                   f'stroke="{COLORS[imp]}" stroke-width="2.5"/>')
        svg.append(f'<text x="{lx + 30}" y="{y}">{imp}</text>')
        lx += 130
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def machine():
    def cmd(*a):
        try:
            out = subprocess.run(a, capture_output=True, text=True).stdout.strip()
            return out.splitlines()[0] if out else "?"
        except OSError:
            return "?"
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "os": cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
            "rustc": cmd("rustc", "-V"), "qemu": cmd("qemu-aarch64", "--version")}


def group_table(crit, w, group, left, right):
    """A two-column table of every benchmark in a criterion group."""
    w(f"| {left} | {right} |\n|---|---:|")
    for key, e in sorted((k, v) for k, v in crit.items() if k != "paired"):
        g, f, _ = key
        if g == group:
            w(f"| `{f}` | {timing(e)} |")
    w("")


def write(results, crit, out_md, svg_rel, bench_args):
    m = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = []
    w = md.append
    w("# Benchmarks: `icache` side by side with its peers\n")
    w("Generated by `bash .ci/bench.sh` (do not edit by hand). "
      f"Generated {now} on: {m['cpu']}, {m['cores']} cores, {m['os']}, Linux {m['kernel']}, "
      f"{m['rustc']}, {m['qemu']}.\n")
    w("Peers, each called the way its documentation asks a JIT to make code executable on the "
      "calling thread (`benches/src/peers.rs`): `wasmtime34` = wasmtime-jit-icache-coherence "
      "34.0.2 `clear_cache`; `wasmtime48` and `wasmtime50` = wasmtime-internal-jit-icache-coherence "
      "48.0.8 and 50.0.1 `clear_cache` (50 declares Rust 1.97; built with "
      "`--ignore-rust-version`); `clear-cache` = clear-cache "
      "0.1.3 `clear_cache(start, end)`; `dynasmrt` = dynasmrt 5.1.0 "
      "`cache_control::synchronize_icache` then `prepare_for_execution`; `libgcc` = "
      "`__clear_cache(start, end)` from libgcc_s (GCC 12). `raw` = one "
      "`membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` system call, the floor for a cross-thread "
      "flush.\n")

    # ---- reading first: targets
    w("## Targets\n")
    w("| target | result | evidence |\n|---|---|---|")
    for name, ok, evidence in evaluate(results, crit):
        w(f"| {name} | {'**met**' if ok else '**missed**'} | {evidence} |")
    w("")
    w(reading(results))

    # ---- host timings
    w("## Host timings (criterion)\n")
    w(f"`cargo bench -p icache-benches --features peers --bench clear_cache -- {bench_args}` "
      "on the machine above (x86-64: the "
      "caches are coherent, so `clear_cache` is expected to cost nothing; what is measured is "
      "the call's own overhead). Median per call, with criterion's 95% confidence interval. The "
      "machine is shared and noisy: differences under about 10% are not significant.\n")
    impls_host = [i for i in IMPLS if ("clear_cache", i, "64") in crit]
    w("| bytes | " + " | ".join(f"`{i}`" for i in impls_host) + " |")
    w("|---:|" + "---:|" * len(impls_host))
    for s in [64, 256, 4096, 65536, 1 << 20]:
        row = [timing(crit[("clear_cache", i, str(s))], False)
               if ("clear_cache", i, str(s)) in crit else "–" for i in impls_host]
        w(f"| {s} | " + " | ".join(row) + " |")
    w("")
    w(f"1000 functions of {BATCH_LEN} B (one `clear_cache_slices` call for `icache_many`, 1000 "
      "single calls otherwise):\n")
    group_table(crit, w, "batch_1000x256", "implementation", "time per batch")
    w("Cross-thread pipeline flush, steady state (after registration):\n")
    group_table(crit, w, "pipeline_flush_mt", "implementation", "time per call")
    if "paired" in crit:
        pr = crit["paired"]
        w(f"The same two calls interleaved ({len(pr['icache_ns'])} alternating rounds of "
          f"{pr['calls']} calls each, so both see the same load; medians): `icache` "
          f"{fmt_ns(median(pr['icache_ns']))}, raw membarrier {fmt_ns(median(pr['raw_ns']))}, "
          f"per-round ratio {median([a / b for a, b in zip(pr['icache_ns'], pr['raw_ns'])]):.3f}."
          "\n")
    w("First call in a fresh process (each sample is a new child process, which times the call "
      "with `Instant` and reports it; the spawn is not counted). `icache_prepare` is "
      "`prepare_pipeline_flush()` (register, choose, remember); `icache_flush` a first "
      "`pipeline_flush_mt()` without it; `raw_register_then_flush` the two raw system calls; "
      "`wasmtime*` their first `pipeline_flush_mt()`, a no-op on x86-64: their time is the "
      "floor of this way of measuring (two `Instant::now()` and the output).\n")
    group_table(crit, w, "first_call", "first call", "time")

    # ---- instruction counts
    w("## Instructions per call under qemu-user\n")
    w(f"`benches/src/bin/peers_probe.rs` (release) under qemu-user with the counting plugin "
      f"`tests/qemu-plugin/icount.c`; per call = (count at {int(REPS[1])} calls − count at "
      f"{int(REPS[0])}) / {DELTA}, exact. Ranges start on a page boundary. `lines` = cache lines "
      "the range overlaps (= the `dc cvau` and the `ic ivau` a correct call needs; no `dc cvau` "
      "where CTR_EL0.IDC = 1). `dsb` counts every `dsb` option. `total` = instructions the call "
      "adds to an empty call. `ctr` = `mrs ctr_el0` reads, `svc` = system calls. `neoverse-n2` "
      "and RISC-V with the prctl accepted run on the QEMU 10 built by `.ci/qemu10.sh`, whose "
      "start-up takes one of two paths; their per-call counts come from a pair of runs that "
      "differs by whole calls in every class (`.ci/qemucount.py`).\n")
    w(f"![instructions per call against size, and relative to icache]({svg_rel})\n")
    w(per_line_table(results))
    for cpu, line in AARCH64_CPUS:
        idc = ", CTR_EL0.IDC = 1, QEMU 10" if cpu in IDC_CPUS else ""
        w(f"### AArch64 `-cpu {cpu}` ({line}-byte lines{idc})\n")
        w("| bytes | lines | implementation | dc cvau | dc civac | ic ivau | dsb | isb | ctr "
          "| svc | total |")
        w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = [(s, lines_touched(s, line), imp, results[("aarch64", cpu, imp, "clear", s)])
                for s in SIZES for imp in IMPLS]
        rows += [(f"{BATCH_N}×{BATCH_LEN}", lines_touched(BATCH_LEN, line, BATCH_N),
                  imp, results[("aarch64", cpu, imp, "batch", BATCH_LEN)])
                 for imp in BATCH_IMPLS]
        for s, n, imp, p in rows:
            w(f"| {s} | {n} | {bold(imp)} | " + " | ".join(str(p[c]) for c in A64_CLASSES)
              + f" | {p['net']} |")
        w("")
    w("### RISC-V 64\n")
    w("System calls (`ecall`), `fence.i` and total instructions per call, where the kernel "
      "refuses `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX)` (Debian's qemu-user, like Linux before "
      "6.10) and where it accepts it (the QEMU 10 built here, like Linux 6.10+). `publish` = "
      f"`clear_cache` of {PUBLISH_LEN} B then the cross-thread flush (`pipeline_flush_mt`), what "
      "a JIT does before other threads may run the code; clear-cache, dynasmrt and libgcc offer "
      "no cross-thread flush, so theirs is followed by the raw `membarrier` their users must "
      "add.\n")
    w("| bytes | implementation | " + " | ".join(
        f"{c} ({'accepted' if m else 'refused'})" for m in RISCV_MODELS
        for c in ("fence.i", "ecall", "total")) + " |")
    w("|---:|---|" + "---:|" * 3 * len(RISCV_MODELS))
    rv_rows = [(s, imp, "clear", s) for s in SIZES for imp in IMPLS]
    rv_rows += [(f"{BATCH_N}×{BATCH_LEN}", imp, "batch", BATCH_LEN) for imp in BATCH_IMPLS]
    rv_rows += [(f"publish {PUBLISH_LEN}", imp, "publish", PUBLISH_LEN) for imp in IMPLS]
    for label, imp, op, length in rv_rows:
        cells = []
        for m in RISCV_MODELS:
            p = results[("riscv64", m, imp, op, length)]
            cells += [p["fence_i"], p["ecall"], p["net"]]
        w(f"| {label} | {bold(imp)} | " + " | ".join(map(str, cells)) + " |")
    w("")
    w("### x86-64 (the host binary under qemu-x86_64)\n")
    w("Total instructions added per call. `icache-discard` ignores the `Result` (`let _ =`); "
      "`icache` inspects it, which keeps the wrapping-range check (`InvalidInput`). Batch: "
      "`icache` is one `clear_cache_many` (checks every range), `icache-slices` one "
      "`clear_cache_slices`, the others 1000 calls.\n")
    x86 = ["icache-discard"] + IMPLS
    w("| bytes | " + " | ".join(x86) + " |\n|---:|" + "---:|" * len(x86))
    for s in SIZES:
        w(f"| {s} | " + " | ".join(str(results[("x86_64", None, i, "clear", s)]["net"])
                                   for i in x86) + " |")
    w(f"| {BATCH_N}×{BATCH_LEN} | {results[('x86_64', None, 'icache-slices', 'batch', BATCH_LEN)]['net']} (`icache-slices`) | "
      + " | ".join(str(results[("x86_64", None, i, "batch", BATCH_LEN)]["net"]) for i in IMPLS)
      + " |")
    w("")
    w("### Cross-thread flush, steady state\n")
    w("| architecture | implementation | svc/ecall/syscall | total |\n|---|---|---:|---:|")
    for arch, cpu in (("aarch64", "cortex-a53"), ("riscv64", None), ("riscv64", RV_PRCTL),
                      ("x86_64", None)):
        for imp in FLUSH_IMPLS:
            p = results[(arch, cpu, imp, "flush", 0)]
            sc = p.get("svc", p.get("ecall", "–"))
            where = arch if arch != "riscv64" else (
                "rv64, prctl accepted (QEMU 10)" if cpu == RV_PRCTL else "rv64, prctl refused")
            w(f"| {where} | {imp} | {sc} | {p['net']} |")
    w("")
    # The sections other scripts write are kept as they are: the coherence checker's
    # (.ci/coherence.py) and the Cranelift client's (.ci/cranelift.sh).
    try:
        with open(out_md) as f:
            old = f.read()
        for name in ("coherence", "cranelift"):
            begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
            if begin in old and end in old:
                w(old[old.index(begin):old.index(end) + len(end)] + "\n")
    except FileNotFoundError:
        pass
    with open(out_md, "w") as f:
        f.write("\n".join(md))


def against_peers(results):
    """[(model, size, icache's count, the cheapest full-sequence peer's, that peer)] (AArch64)."""
    return [(cpu, s, results[("aarch64", cpu, "icache", "clear", s)]["net"],
             *min((results[("aarch64", cpu, i, "clear", s)]["net"], i) for i in FULL_SEQUENCE))
            for cpu, _ in AARCH64_CPUS for s in SIZES]


def margins(rows):
    """icache minus the cheapest peer over `rows`: "+n", or "lo to hi"."""
    lo, hi = min(r[2] - r[3] for r in rows), max(r[2] - r[3] for r in rows)
    return f"{lo:+d}" if lo == hi else f"{lo:+d} to {hi:+d}"


ICACHE_CONFIGS = ([("icache", "clear", s) for s in SIZES]
                  + [("icache", "batch", BATCH_LEN), ("icache-slices", "batch", BATCH_LEN)])


def evaluate(results, crit):
    """[(target, met, evidence)]."""
    out = []
    a64 = [(f"{cpu} {imp} {op} {s}", ("aarch64", cpu, imp, op, s), line)
           for cpu, line in AARCH64_CPUS for imp, op, s in ICACHE_CONFIGS]

    def target(name, configs, problem, fine):
        """problem(counts, key, line) says what is wrong with one configuration (falsy: nothing);
        `fine` is the evidence where nothing is."""
        bad = [f"{label}: {b}" for label, key, line in configs
               if (b := problem(results[key], key, line))]
        out.append((name, not bad, "; ".join(bad) or fine))

    def maintenance(p, key, line):
        op, s = key[3:]
        n = lines_touched(s, line, BATCH_N if op == "batch" else 1)
        dc = 0 if key[1] in IDC_CPUS else n
        if p["dc_cvau"] != dc or p["ic_ivau"] != n or p["dc_civac"]:
            return f"dc {p['dc_cvau']} ic {p['ic_ivau']}, want {dc} and {n}"
    target("maintenance instructions = lines touched (AArch64, every model, size, batch; "
           "no `dc cvau` where CTR_EL0.IDC = 1)", a64, maintenance,
           f"`dc cvau` = `ic ivau` = lines (`dc cvau` 0 on {', '.join(sorted(IDC_CPUS))}) in all "
           f"{len(a64)} configurations")
    target("3 barriers per call and per batch (2 `dsb ish` + 1 `isb`)", a64,
           lambda p, *_: p["dsb_any"] + p["isb"] != 3 and f"{p['dsb_any']} dsb + {p['isb']} isb",
           "3 in every configuration, including the 1000-range batch")
    target("0 CTR_EL0 reads, 0 system calls per steady-state AArch64 call", a64,
           lambda p, *_: (p["mrs_ctr_el0"] or p["svc"])
           and f"ctr {p['mrs_ctr_el0']} svc {p['svc']}", "0 and 0 everywhere")

    rows = against_peers(results)
    worse = [f"{cpu} {s} B: {me} vs {imp} {best}" for cpu, s, me, best, imp in rows if me > best]
    out.append((f"total instructions ≤ the cheapest full-sequence peer ({', '.join(FULL_SEQUENCE)})",
                not worse, f"icache − best peer: {margins(rows)} instructions in {len(rows)} "
                "configurations; " + ("; ".join(worse if len(worse) <= 3 else worse[:2] + ["…"] + worse[-1:]))))

    one = []
    for cpu, line in AARCH64_CPUS:
        for s in SIZES:
            if lines_touched(s, line) == 1:
                one.append((results[("aarch64", cpu, "icache", "clear", s)]["net"], cpu, s))
    out.append(("a call on a range inside one line ≤ 20 instructions (every model)",
                bool(one) and max(one)[0] <= 20,
                ", ".join(f"{cpu} {s} B: {n}" for n, cpu, s in one)))

    bb = {imp: results[("aarch64", "cortex-a53", imp, "batch", BATCH_LEN)]["net"]
          for imp in ("icache", "icache-slices")}
    out.append((f"{BATCH_N} ranges of {BATCH_LEN} B back to back on cortex-a53 ≤ 30,000 "
                "instructions (`clear_cache_many` and `clear_cache_slices`)",
                max(bb.values()) <= 30000,
                f"`clear_cache_many` {bb['icache']}, `clear_cache_slices` {bb['icache-slices']}"))

    paired = crit.get("paired")
    extra = (results[("x86_64", None, "icache", "flush", 0)]["net"]
             - results[("x86_64", None, "raw", "flush", 0)]["net"])
    if paired:
        mine, raw = paired["icache_ns"], paired["raw_ns"]
        ratio = median([a / b for a, b in zip(mine, raw)])
        out.append(("x86-64 steady-state `pipeline_flush_mt` within 5% of one raw membarrier",
                    ratio <= 1.05,
                    f"median per-round ratio {ratio:.3f} over {len(mine)} interleaved rounds of "
                    f"{paired['calls']} calls (medians {fmt_ns(median(mine))} vs "
                    f"{fmt_ns(median(raw))}); under qemu the call adds {extra:+d} instructions "
                    "to the raw call"))
    x86 = lambda imp, op, s: results[("x86_64", None, imp, op, s)]["net"]
    nz = [f"{s} B: {x86('icache-discard', 'clear', s)}" for s in SIZES
          if x86("icache-discard", "clear", s) != 0]
    bn = x86("icache-slices", "batch", BATCH_LEN)
    kept = sorted({x86("icache", "clear", s) for s in SIZES})
    many = x86("icache", "batch", BATCH_LEN)
    out.append(("x86-64 `clear_cache` executes zero instructions", not nz and bn == 0,
                (", ".join(nz) if nz else "0 at every size with the result ignored")
                + f"; `clear_cache_slices` for 1000 slices: {bn}. Not zero: with the `Result` "
                f"inspected, `clear_cache` keeps its wrapping-range check "
                f"({'/'.join(map(str, kept))} instructions), and `clear_cache_many` checks "
                f"every range ({many} for 1000 ranges)"))

    for model, want, what in ((None, (1, 0), "prctl refused: one `riscv_flush_icache` "
                               "system call"),
                              (RV_PRCTL, (0, 1), "prctl accepted: one `fence.i`, no system call")):
        target(f"RISC-V, {what} per call and per batch",
               [(f"{imp} {op} {s}", ("riscv64", model, imp, op, s), 0)
                for imp, op, s in ICACHE_CONFIGS],
               lambda p, *_: (p["ecall"], p["fence_i"]) != want
               and f"ecall {p['ecall']} fence.i {p['fence_i']}",
               f"{want[0]} `ecall`, {want[1]} `fence.i` everywhere")
    return out


def reading(results):
    r = results
    a53 = lambda imp, s=4096: r[("aarch64", "cortex-a53", imp, "clear", s)]
    fx = lambda imp, s=4096: r[("aarch64", "a64fx", imp, "clear", s)]
    mx = lambda imp, s=4096: r[("aarch64", "max", imp, "clear", s)]
    b = lambda cpu, imp: r[("aarch64", cpu, imp, "batch", BATCH_LEN)]
    t = ["### Reading\n"]
    t.append(
        f"* **wasmtime 34 does nothing on AArch64**: {a53('wasmtime34')['net']} instructions, "
        f"{a53('wasmtime34')['ic_ivau']} `ic ivau`, {a53('wasmtime34')['dsb_any']} barriers for "
        "4 KiB on every model. It is cheap because it skips the whole sequence; code written "
        "through a data mapping is not guaranteed to be fetched.")
    t.append(
        f"* **wasmtime 48 walks a fixed 64-byte stride with `ic ivau` only**: no `dc cvau` "
        f"({a53('wasmtime48')['dc_cvau']}), one `dsb`. On `a64fx` (256-byte lines) it issues "
        f"{fx('wasmtime48')['ic_ivau']} `ic ivau` for 4 KiB where {fx('icache')['ic_ivau']} "
        f"are needed (4×); on `max` (32-byte lines) it issues {mx('wasmtime48')['ic_ivau']} "
        f"where {mx('icache')['ic_ivau']} lines exist, so every other line is never "
        "invalidated. Its lower totals come from skipping the clean, which correctness needs "
        "unless CTR_EL0.IDC is set.")
    n2 = lambda imp, s=4096: r[("aarch64", "neoverse-n2", imp, "clear", s)]
    w50, w50n2 = a53("wasmtime50"), n2("wasmtime50")
    t.append(
        f"* **wasmtime 50** on `cortex-a53`, 4 KiB: {w50['dc_cvau']} `dc cvau`, "
        f"{w50['ic_ivau']} `ic ivau`, {w50['dsb_any']} `dsb` + {w50['isb']} `isb`, "
        f"{w50['mrs_ctr_el0']} CTR_EL0 reads per call, {w50['net']} instructions (icache "
        f"{a53('icache')['net']}); on `neoverse-n2` (IDC = 1) {w50n2['dc_cvau']} `dc cvau` and "
        f"{w50n2['ic_ivau']} `ic ivau`, {w50n2['net']} instructions (icache {n2('icache')['net']}, "
        f"{n2('icache')['dc_cvau']} `dc cvau`).")
    ic, sl, lg, dyn = (b("cortex-a53", i) for i in ("icache", "icache-slices", "libgcc", "dynasmrt"))
    bars = lambda p: p["dsb_any"] + p["isb"]
    t.append(
        f"* **clear-cache and dynasmrt read CTR_EL0 on every call** "
        f"({a53('clear-cache')['mrs_ctr_el0']} and {a53('dynasmrt')['mrs_ctr_el0']} per call); "
        "under qemu the read is one instruction, on cores whose kernel traps it (errata, "
        "mismatched big.LITTLE) it is a trap per call. dynasmrt also ignores IDC/DIC. Both issue "
        "the full sequence per call: for 1000 functions of 256 B they execute "
        f"{bars(dyn)} barriers where `clear_cache_many` executes {bars(ic)}.")
    t.append(
        f"* **libgcc** (`__clear_cache`) does the full sequence with a cached CTR_EL0 "
        f"({a53('libgcc')['mrs_ctr_el0']} reads per call), through a PLT call.")
    t.append(
        f"* **Batches**: on `cortex-a53`, 1000×256 B costs `clear_cache_many` {ic['net']} "
        f"instructions and `clear_cache_slices` {sl['net']} (3 barriers each), against "
        f"{lg['net']} for 1000 libgcc calls and {dyn['net']} for 1000 dynasmrt calls "
        f"({bars(dyn)} barriers). icache checks the ranges and coalesces those written back to "
        "back into runs in one pass that touches nothing (a range that starts where the last one "
        "ended costs one comparison and one addition), keeps up to 16 runs on the stack (it "
        "allocates nothing), then walks the runs to clean and again to invalidate; on hardware "
        f"the {bars(dyn) - 3} barriers saved outweigh the extra arithmetic.")
    rv = lambda imp, m=None, op="clear", n=4096: r[("riscv64", m, imp, op, n)]
    pub = lambda imp, m: rv(imp, m, "publish", PUBLISH_LEN)
    t.append(
        f"* **RISC-V** (Debian's qemu-user, which refuses the `prctl` that makes a user "
        "`fence.i` valid across migration, as Linux before 6.10 does): icache makes one "
        f"`riscv_flush_icache(start, end, 0)` per call ({rv('icache')['ecall']} `ecall`), every "
        "hart of the process; where the kernel accepts the `prctl` (6.10+, the QEMU 10 built "
        f"here) the call is {rv('icache', RV_PRCTL)['fence_i']} `fence.i` and "
        f"{rv('icache', RV_PRCTL)['ecall']} system calls, and a publish (`clear_cache` + "
        f"`pipeline_flush_mt`) {pub('icache', RV_PRCTL)['ecall']} system call where the peers "
        f"make {', '.join(str(pub(i, RV_PRCTL)['ecall']) for i in IMPLS[1:])} "
        f"({', '.join(IMPLS[1:])}: wasmtime's `pipeline_flush_mt` makes none on RISC-V; the "
        "other three are followed by the raw `membarrier`). wasmtime "
        "34/48/50 and "
        f"dynasmrt also make one system call per `clear_cache` ({rv('wasmtime50')['ecall']}, "
        f"{rv('dynasmrt')['ecall']}) but pass flags 1, the calling hart only (read in their "
        f"sources; qemu-user ignores the flags); clear-cache passes 0. In the QEMU 10 column "
        "the peers that flush through glibc's `__riscv_flush_icache` (wasmtime, dynasmrt) show "
        "no system call at all: QEMU's linux-user vDSO answers `__vdso_flush_icache` with 0 "
        "and does nothing (it retranslates written code by itself); on a kernel that vDSO "
        "entry makes the system call. **libgcc's "
        f"`__clear_cache` does nothing on riscv64** ({rv('libgcc')['ecall']} `ecall`, "
        f"{rv('libgcc')['fence_i']} `fence.i`, {rv('libgcc')['net']} instructions): in GCC 12's "
        "libgcc_s it is a bare `ret` (GCC expands `__builtin___clear_cache` inline to a "
        "`__riscv_flush_icache` call instead). icache's call is "
        f"{rv('icache')['net'] - rv('clear-cache')['net']} instructions longer than "
        "clear-cache's (its `Result` with the errno), against a system call.")
    fl = lambda arch, cpu, imp: r[(arch, cpu, imp, "flush", 0)]["net"]
    t.append(
        f"* **Steady-state `pipeline_flush_mt`**: one system call, like the raw call, but "
        f"{fl('aarch64', 'cortex-a53', 'icache') - fl('aarch64', 'cortex-a53', 'raw')} more "
        f"instructions on AArch64, {fl('riscv64', None, 'icache') - fl('riscv64', None, 'raw')} "
        f"on RISC-V and {fl('x86_64', None, 'icache') - fl('x86_64', None, 'raw')} on x86-64 "
        "(reading the remembered mechanism, an out-of-line call with a stack frame, a `Result` "
        "returned through memory). Against a system call of a few hundred nanoseconds this is "
        "within the noise (see the host timings). wasmtime does no system call on RISC-V and "
        "x86-64: it skips the flush there.")
    peer_lines = ", ".join(f"{i} {per_line(r, 'cortex-a53', i):.3g}" for i in FULL_SEQUENCE)
    t.append(
        f"* **icache against the full-sequence peers** ({', '.join(FULL_SEQUENCE)}): icache "
        f"minus the cheapest of them is {margins(against_peers(r))}"
        " instructions per call over every model and size. Per line (clean and invalidate "
        f"together) icache spends {per_line(r, 'cortex-a53', 'icache'):.3g} instructions on "
        f"`cortex-a53` against {peer_lines} (every model: the per-line table below); the rest "
        "of the difference is fixed per call (the wrapping-range check, the cached CTR_EL0 and its "
        "not-read-yet test, the IDC/DIC tests, line counting). The barriers, which dominate on "
        "hardware, are equal for a single call and 1000× fewer for a batch.")
    t.append(
        "* **Per-line cost, not a ratio**: `dc cvau` and `ic ivau` take only a register "
        "address, so a line costs at least its maintenance instruction and one `add` in each of "
        "the two loops (4 instructions per line for clean + invalidate, 2 with IDC); loop "
        "control comes on top unless the loop is unrolled. icache pays " + ", ".join(f"{per_line(r, c, 'icache'):.3g} on `{c}`" for c, _ in AARCH64_CPUS)
        + "; the per-line table below gives every implementation.")
    t.append("")
    return "\n".join(t)


def main():
    ap = argparse.ArgumentParser()
    for name in ("probe-aarch64", "probe-riscv64", "probe-x86_64", "criterion", "bench-args",
                 "out", "svg"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--plugin-dir", default="target/icount", help="where to build the plugins")
    ap.add_argument("--jobs", type=int, default=2)
    o = ap.parse_args()
    crit = criterion(o.criterion)
    if not crit:
        sys.exit("no criterion results under " + o.criterion)
    log("building the counting plugins and QEMU 10 (cached)")
    plugin, qemu10, plugin10 = build_plugins(o.plugin_dir)
    probes = {"aarch64": o.probe_aarch64, "riscv64": o.probe_riscv64, "x86_64": o.probe_x86_64}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results = measure(Qemu(plugin, probes, tmp, qemu10, plugin10), o.jobs)
    chart(results, o.svg)
    write(results, crit, o.out, os.path.relpath(o.svg, os.path.dirname(os.path.abspath(o.out))),
          o.bench_args)
    log(f"wrote {o.out} and {o.svg}")
    for name, ok, evidence in evaluate(results, crit):
        print(f"{'met   ' if ok else 'MISSED'} {name}: {evidence}")


if __name__ == "__main__":
    main()
