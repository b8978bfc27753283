"""Counting under qemu-user with the plugin tests/qemu-plugin/icount.c, shared by .ci/icount.py
(checks) and .ci/bench.py (tables): builds the plugin for Debian's qemu-user and for the QEMU 10
of .ci/qemu10.sh, runs a program, and takes per-call counts as the difference of two runs with
REPS repetitions over DELTA, so start-up and one-time costs cancel. `neoverse-n2` (CTR_EL0.IDC =
1, not in Debian's 7.2) and RV_PRCTL (RISC-V whose kernel accepts the fence.i prctl, as Linux
6.10+ does; Debian's qemu-user refuses it) run on QEMU 10."""

import os
import subprocess
import tempfile

# Same number of digits, so that parsing the argument costs the same in both runs.
REPS = ("01", "65")
DELTA = 64
IDC_CPUS = {"neoverse-n2"}
RV_PRCTL = "rv64-prctl"


def build_plugins(out):
    """Builds the plugin, QEMU 10 (cached) and the plugin against QEMU 10's header, in `out`.
    Returns (plugin, QEMU 10 prefix, plugin10)."""
    os.makedirs(out, exist_ok=True)
    cc = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
    src, plugin, plugin10 = "tests/qemu-plugin/icount.c", f"{out}/icount.so", f"{out}/icount10.so"
    subprocess.run(cc + ["-o", plugin, src], check=True)
    # qemu10.sh prints the install prefix on its last line; progress goes to stderr.
    qemu10 = subprocess.run(["bash", ".ci/qemu10.sh"], check=True, stdout=subprocess.PIPE,
                            text=True).stdout.split()[-1]
    glib = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.split()
    subprocess.run(cc + ["-DICOUNT_QEMU_HEADER", f"-I{qemu10}/include", *glib, "-o", plugin10,
                         src], check=True)
    return plugin, qemu10, plugin10


class Qemu:
    """Runs `programs[arch]` under qemu-<arch> -cpu `cpu` (None: the default model)."""

    def __init__(self, plugin, programs, tmp, qemu10, plugin10, timeout=300):
        self.plugin, self.programs, self.tmp = plugin, programs, tmp
        self.qemu10, self.plugin10, self.timeout = qemu10, plugin10, timeout

    def run(self, arch, cpu, args):
        """One run: (counts by class, the program's stdout)."""
        cmd, plugin = [f"qemu-{arch}"], self.plugin
        if cpu == RV_PRCTL or cpu in IDC_CPUS:
            # Without address randomisation QEMU 10's start-up takes one of two paths, not one
            # of many (see per_call).
            cmd, plugin = ["setarch", "-R", f"{self.qemu10}/bin/qemu-{arch}"], self.plugin10
            cpu = None if cpu == RV_PRCTL else cpu
        if arch != "x86_64":
            cmd += ["-L", f"/usr/{arch}-linux-gnu"]
        cmd += ["-cpu", cpu] if cpu else []
        fd, out = tempfile.mkstemp(dir=self.tmp, suffix=".txt")
        os.close(fd)
        cmd += ["-plugin", f"{plugin},outfile={out}", self.programs[arch], *args]
        env = {k: v for k, v in os.environ.items() if k != "QEMU_CPU"}
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=self.timeout)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
            with open(out) as f:
                return {name: int(value) for name, value in map(str.split, f)}, p.stdout
        finally:
            os.unlink(out)

    def per_call(self, arch, cpu, args, tries=6):
        """Runs with each of REPS in place of the "{reps}" argument. Returns ({class:
        (quotient, remainder)} by DELTA, the two runs' counts, the second's stdout).

        Debian's qemu-user starts the same way every time: one pair of runs. QEMU 10's start-up
        takes one of two paths (10085 instructions apart on AArch64, 17318 on RISC-V, neither a
        multiple of DELTA, and the system calls differ too), so there runs are added until a
        pair differs by whole calls in every class, which a pair on different paths does not."""
        firsts, seconds = [], []
        for _ in range(tries if cpu == RV_PRCTL or cpu in IDC_CPUS else 1):
            firsts.append(self.run(arch, cpu, [REPS[0] if a == "{reps}" else a for a in args]))
            seconds.append(self.run(arch, cpu, [REPS[1] if a == "{reps}" else a for a in args]))
            for a, _ in firsts:
                for b, stdout in seconds:
                    per = {k: divmod(b[k] - a[k], DELTA) for k in b}
                    if all(r == 0 for _, r in per.values()):
                        return per, a, b, stdout
        return per, a, b, stdout


def lines(offset, length, line):
    """Cache lines overlapped by `length` bytes at `offset` from a line-aligned base."""
    return (offset + length - 1) // line - offset // line + 1 if length else 0


def selftest(report, plugin, arch, binary, want, qemu=None, label=""):
    """Checks the counter on a hand-written program whose counts are known."""
    cmd = [qemu or f"qemu-{arch}", "-plugin", f"{plugin},outfile=/dev/stdout", binary]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    got = dict((n, int(v)) for n, v in (l.split() for l in p.stdout.splitlines()))
    bad = [f"{k}={got.get(k)}(want {v})" for k, v in want.items() if got.get(k) != v]
    report.check(p.returncode == 0 and not bad,
                 f"plugin self-test {arch}{label}: " + (" ".join(bad) if bad else
                                                  " ".join(f"{k}={v}" for k, v in want.items())))
