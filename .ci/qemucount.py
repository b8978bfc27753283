"""Counting under qemu-user, shared by .ci/icount.py (checks) and .ci/bench.py (tables).

Builds the counting plugin (tests/qemu-plugin/icount.c) for Debian's qemu-user and for the
QEMU 10 of .ci/qemu10.sh, runs a program under either with the plugin, and takes per-call
counts by difference: two runs with REPS repetitions, (second - first) / DELTA, so start-up
and one-time costs cancel.

Models that need QEMU 10: `neoverse-n2` (CTR_EL0.IDC = 1; Debian's 7.2 has no such model) and
RV_PRCTL, RISC-V where the kernel accepts the fence.i prctl (QEMU 10 patched to answer it as
Linux 6.10+ does; Debian's qemu-user refuses it, as Linux before 6.10 does).
"""

import os
import subprocess
import tempfile

# Same number of digits, so that parsing the argument costs the same in both runs.
REPS = ("01", "65")
DELTA = 64
IDC_CPUS = {"neoverse-n2"}
RV_PRCTL = "rv64-prctl"


def build_plugins(out, with_qemu10=True):
    """Compiles the plugin into `out` (and, with `with_qemu10`, builds QEMU 10 and the plugin
    against its header). Returns (plugin, qemu10 prefix or None, plugin10 or None)."""
    os.makedirs(out, exist_ok=True)
    cc = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
    src = "tests/qemu-plugin/icount.c"
    plugin = os.path.join(out, "icount.so")
    subprocess.run(cc + ["-o", plugin, src], check=True)
    if not with_qemu10:
        return plugin, None, None
    # qemu10.sh prints the install prefix on its last line; progress goes to stderr.
    qemu10 = subprocess.run(["bash", ".ci/qemu10.sh"], check=True, stdout=subprocess.PIPE,
                            text=True).stdout.strip().splitlines()[-1]
    glib = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.split()
    plugin10 = os.path.join(out, "icount10.so")
    subprocess.run(cc + ["-DICOUNT_QEMU_HEADER", f"-I{qemu10}/include", *glib, "-o", plugin10,
                         src], check=True)
    return plugin, qemu10, plugin10


class Qemu:
    """Runs `programs[arch]` under qemu-<arch> with the plugin; `cpu` None is the default
    model, IDC_CPUS and RV_PRCTL run on QEMU 10."""

    def __init__(self, plugin, programs, tmp, qemu10=None, plugin10=None, timeout=300):
        self.plugin, self.programs, self.tmp = plugin, programs, tmp
        self.qemu10, self.plugin10, self.timeout = qemu10, plugin10, timeout

    def command(self, arch, cpu, outfile, program):
        qemu, plugin = f"qemu-{arch}", self.plugin
        if cpu == RV_PRCTL or cpu in IDC_CPUS:
            if not self.qemu10:
                raise RuntimeError(f"{cpu} needs the QEMU 10 build")
            qemu, plugin = f"{self.qemu10}/bin/qemu-{arch}", self.plugin10
            cpu = None if cpu == RV_PRCTL else cpu
            # Without ASLR its start-up takes one of two paths, not one of many (see per_call_exact).
            qemu = ["setarch", "-R", qemu]
        cmd = qemu if isinstance(qemu, list) else [qemu]
        if arch != "x86_64":
            cmd += ["-L", f"/usr/{arch}-linux-gnu"]
        if cpu:
            cmd += ["-cpu", cpu]
        return cmd + ["-plugin", f"{plugin},outfile={outfile}", program]

    def run(self, arch, cpu, args):
        """One run of the program: (counts by class, its stdout)."""
        fd, out = tempfile.mkstemp(dir=self.tmp, suffix=".txt")
        os.close(fd)
        cmd = self.command(arch, cpu, out, self.programs[arch]) + list(args)
        env = {k: v for k, v in os.environ.items() if k != "QEMU_CPU"}
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=self.timeout)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
            with open(out) as f:
                counts = {name: int(value) for name, value in (line.split() for line in f)}
        finally:
            os.unlink(out)
        return counts, p.stdout

    def per_call(self, arch, cpu, args):
        """Runs with each of REPS in place of the "{reps}" argument. Returns the per-call
        counts as {class: (quotient, remainder)} by DELTA, both runs' whole-process counts, and
        the second run's stdout."""
        a, _ = self.run(arch, cpu, with_reps(args, REPS[0]))
        b, stdout = self.run(arch, cpu, with_reps(args, REPS[1]))
        return {k: divmod(b[k] - a[k], DELTA) for k in b}, a, b, stdout

    def per_call_exact(self, arch, cpu, args, tries=6):
        """Per-call counts {class: n}, whole in every class, or RuntimeError.

        Debian's qemu-user runs the same start-up every time: one pair of runs. QEMU 10's
        start-up takes one of two paths (seen: 10085 instructions apart on AArch64, 17318 on
        RISC-V, neither a multiple of DELTA), so there runs with both repetition counts are
        added until some pair differs by a whole number of calls in every class: a pair that
        took different paths cannot."""
        first, second = [], []
        for _ in range(tries):
            first.append(self.run(arch, cpu, with_reps(args, REPS[0]))[0])
            second.append(self.run(arch, cpu, with_reps(args, REPS[1]))[0])
            for a in first:
                for b in second:
                    per = {k: divmod(b[k] - a[k], DELTA) for k in b}
                    if all(r == 0 for _, r in per.values()):
                        return {k: q for k, (q, _) in per.items()}
            if cpu != RV_PRCTL and cpu not in IDC_CPUS:
                break
        raise RuntimeError(f"{arch} {cpu} {' '.join(args)}: no pair of runs differs by whole "
                           f"calls ({len(first)} pairs)")


def with_reps(args, reps):
    """`args` with `reps` in place of "{reps}"."""
    return [reps if a == "{reps}" else a for a in args]


def selftest(report, plugin, arch, binary, want, qemu=None, label=""):
    """Checks the counter on a hand-written program whose counts are known."""
    cmd = [qemu or f"qemu-{arch}", "-plugin", f"{plugin},outfile=/dev/stdout", binary]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    got = dict((n, int(v)) for n, v in (l.split() for l in p.stdout.splitlines()))
    bad = [f"{k}={got.get(k)}(want {v})" for k, v in want.items() if got.get(k) != v]
    report.check(p.returncode == 0 and not bad,
                 f"plugin self-test {arch}{label}: " + (" ".join(bad) if bad else
                                                  " ".join(f"{k}={v}" for k, v in want.items())))
