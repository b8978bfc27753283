#!/usr/bin/env python3
"""Machine-code checks for `.ci/disasm.sh`, on `objdump -dr --no-show-raw-insn` output.

AArch64: follows every path through the compiled `clear_cache` (a small control-flow graph, each
loop taken once) and checks the order of cache maintenance and barriers on each (a run of
`dc cvau` or `ic ivau`, as the unrolled walks give, counts as one step), that each walk has a
loop whose body holds only its own maintenance instruction, that `CTR_EL0` is read only in
the cold function, and that a span inside one line takes the inlined path without a call.
x86-64: checks that an ignored `clear_cache` compiles to a bare `ret`.
"""

import argparse
import re
import subprocess
import sys

from checklog import Report

DC, IC, DSB, ISB, MRS = "dc cvau", "ic ivau", "dsb ish", "isb", "mrs ctr_el0"
FULL = (DC, DSB, IC, DSB, ISB)
# Every sequence a correct `clear_cache` may take, by CTR_EL0.IDC / DIC; () for an empty range.
ALLOWED = {(), FULL, (DSB, IC, DSB, ISB), (DC, DSB, ISB), (DSB, ISB)}
# Instructions of the inlined path for a span inside one line, full sequence, from the wrapper's
# entry to its return: the empty and wrapping checks, the cached CTR_EL0 load (through the GOT in
# position-independent code: three instructions), the one-line test, the seven steps and `ret`.
# (Under the counting plugin, .ci/icount.sh, the call adds 16 to an empty loop.)
ONE_LINE_MAX = 21


class Insn:
    def __init__(self, addr, mnemonic, operands):
        self.addr, self.mnemonic, self.operands = addr, mnemonic, operands
        self.reloc = None  # symbol of a relocation on this instruction


def functions(dump):
    """{name: [Insn]} from objdump output."""
    funcs, cur = {}, None
    for line in dump.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is None:
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+R_\S+\s+(\S+)", line)
        if m and cur:
            cur[-1].reloc = m.group(2)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\t(\S+)\s*(.*)$", line)
        if m:
            cur.append(Insn(int(m.group(1), 16), m.group(2), m.group(3).strip()))
    return funcs


def event(insn):
    """The ordering-relevant meaning of an AArch64 instruction, or None."""
    op, args = insn.mnemonic, insn.operands
    if op == "dc" and args.startswith("cvau"):
        return DC
    if op == "ic" and args.startswith("ivau"):
        return IC
    if op == "dsb":
        return DSB if args.split()[0] == "ish" else "dsb " + args
    if op == "isb":
        return ISB
    if op in ("dc", "ic"):
        return f"{op} {args.split(',')[0]}"
    if op == "mrs" and "ctr_el0" in args:
        return MRS
    if op in ("bl", "blr", "call") or (op in ("b", "jmp") and insn.reloc):
        return "call " + (insn.reloc or args)
    return None


def branch(insn, arch):
    """(kind, target address or None): kind is 'ret', 'jump', 'cond', 'indirect' or None."""
    op = insn.mnemonic
    m = re.search(r"\b([0-9a-f]+) <", insn.operands)
    target = int(m.group(1), 16) if m else None
    if insn.reloc and op in ("b", "jmp"):
        return "ret", None  # a tail call leaves the function
    if arch == "aarch64":
        if op == "ret":
            return "ret", None
        if op == "br":
            return "indirect", None
        if op == "b":
            return "jump", target
        if op.startswith("b.") or op in ("cbz", "cbnz", "tbz", "tbnz"):
            return "cond", target
    else:
        if op.startswith("ret"):
            return "ret", None
        if op == "jmp":
            return ("jump", target) if target is not None else ("indirect", None)
        if op.startswith("j"):
            return "cond", target
    return None, None


def paths(insns, arch):
    """Every path from the entry to a return, each loop taken once: [(events, n_insns)].
    A path that would revisit an instruction is a loop's back edge and ends there."""
    index = {i.addr: k for k, i in enumerate(insns)}
    out, stack = [], [(0, (), frozenset(), 0)]
    while stack:
        k, events, seen, n = stack.pop()
        if k >= len(insns) or k in seen:
            continue
        if len(out) > 100000:
            raise RuntimeError("too many paths")
        insn = insns[k]
        seen, n = seen | {k}, n + 1
        e = event(insn)
        if e:
            events = events + (e,)
        kind, target = branch(insn, arch)
        if kind == "ret":
            out.append((events, n))
        elif kind == "indirect":
            out.append((events + ("indirect branch",), n))
        elif kind == "jump":
            stack.append((index.get(target, len(insns)), events, seen, n))
        else:
            stack.append((k + 1, events, seen, n))
            if kind == "cond":
                stack.append((index.get(target, len(insns)), events, seen, n))
    return out


def in_loop(insns, k, arch):
    """A conditional branch after insns[k] jumps back to it or before it, and the loop body
    holds no other ordering-relevant instruction."""
    for j in range(k + 1, len(insns)):
        kind, target = branch(insns[j], arch)
        if kind == "cond" and target is not None and target <= insns[k].addr:
            body = [e for i in insns if target <= i.addr <= insns[j].addr if (e := event(i))]
            return bool(body) and set(body) == {event(insns[k])}
        if kind in ("ret", "jump", "indirect"):
            return False
    return False

def collapse(events):
    """Consecutive repeats of one maintenance instruction as one step: an unrolled walk."""
    out = []
    for e in events:
        if not (out and e == out[-1] and e in (DC, IC)):
            out.append(e)
    return tuple(out)

def objdump(tool, path):
    p = subprocess.run([tool, "-dr", "--no-show-raw-insn", "-C", path],
                       capture_output=True, text=True)
    # An rlib also holds metadata objdump does not recognise: only the disassembly matters.
    if not p.stdout.strip():
        raise RuntimeError(f"{tool} {path}: {p.stderr.strip()}")
    return p.stdout

def show(seq):
    return "[" + ", ".join(seq) + "]" if seq else "[]"

def check_aarch64(report, obj, rlib, tool):
    funcs = functions(objdump(tool, obj))
    lib = functions(objdump(tool, rlib))
    readers = sorted(n for n, ins in lib.items() if any(event(i) == MRS for i in ins))
    report.check(len(readers) == 1 and "read_ctr_el0" in readers[0],
                 f"aarch64: the icache library reads CTR_EL0 in exactly one function, the cold "
                 f"reader: {readers}")
    # Spans over more than one line go to one out-of-line function (a call or tail call from
    # the inlined one-line path): its walks are checked there, and in the wrappers' totals.
    # The first call, and cores with IDC, DIC or two line sizes: a cold function of their own;
    # cores whose D- and I-lines differ take another.
    for short, what, may_call in (
            ("clear_lines", "out-of-line multi-line function", ("clear_lines_other",)),
            ("clear_lines_other", "function for the other cores",
             ("read_ctr_el0", "sync_span_two_sizes")),
            ("sync_span_two_sizes", "function for differing line sizes", ())):
        found = [n for n in lib if n.endswith(short)]
        report.check(len(found) == 1, f"aarch64: one {what}: {found}")
        check_walker(report, f"icache::clear::aarch64::{short}",
                     lib[found[0]] if len(found) == 1 else [], may_call)
    for name in ("icache_disasm_discard", "icache_disasm_result", "icache_disasm_slice_discard"):
        insns = funcs.get(name)
        if not insns:
            report.check(False, f"aarch64 {name}: not found in {obj}")
            continue
        ps, calls = check_orders(report, name, insns)
        mrs = [hex(i.addr) for i in insns if event(i) == MRS]
        fast = [n for evs, n in ps if collapse(evs) == FULL]
        report.check(not mrs and all(("read_ctr_el0" in c or "clear_lines" in c) for c in calls)
                     and fast and min(fast) <= ONE_LINE_MAX,
                     f"aarch64 {name}: mrs ctr_el0 at {mrs or 'none'}; calls {sorted(calls)}; "
                     + (f"a span in one line: the full sequence in {min(fast)} instructions "
                        f"(at most {ONE_LINE_MAX}), no call" if fast
                        else "NO path runs the full sequence without a call"))


def check_orders(report, name, insns):
    """Every path's maintenance order is allowed and one runs the full sequence; the calls
    checked apart. Returns the paths and the names called."""
    ps = paths(insns, "aarch64")
    calls = {e.split(" ", 1)[1] for evs, _ in ps for e in evs if e.startswith("call ")}
    seqs = {collapse(e for e in evs if not e.startswith("call ")) for evs, _ in ps}
    bad = sorted(seqs - ALLOWED)
    report.check(FULL in seqs and not bad,
                 f"aarch64 {name}: {len(ps)} paths; maintenance orders "
                 + " ".join(show(s) for s in sorted(seqs, key=len))
                 + (f"; NOT ALLOWED: {' '.join(show(s) for s in bad)}" if bad else ""))
    return ps, calls


def check_walker(report, name, insns, may_call):
    """The multi-line function: every path an allowed order, each walk a loop of its own
    maintenance instruction, no `CTR_EL0` read and no call but to the cold reader."""
    if not insns:
        report.check(False, f"aarch64 {name}: not found in the rlib")
        return
    ps, calls = check_orders(report, name, insns)
    loops = [(insns[k].mnemonic, in_loop(insns, k, "aarch64")) for k in range(len(insns))
             if event(insns[k]) in (DC, IC)]
    looped = {m for m, ok in loops if ok}
    report.check({m for m, _ in loops} == {"dc", "ic"} and looped == {"dc", "ic"},
                 f"aarch64 {name}: a loop of only dc cvau and a loop of only ic ivau "
                 f"({sum(m == 'dc' for m, _ in loops)} dc cvau, "
                 f"{sum(m == 'ic' for m, _ in loops)} ic ivau in the code; "
                 f"in loops: {sorted(looped) or 'none'})")
    mrs = [hex(i.addr) for i in insns if event(i) == MRS]
    report.check(not mrs and all(any(m in c for m in may_call) for c in calls),
                 f"aarch64 {name}: mrs ctr_el0 at {mrs or 'none'}; calls {sorted(calls)}")


def check_x86(report, obj, tool):
    funcs = functions(objdump(tool, obj))
    for name in ("icache_disasm_discard", "icache_disasm_slice_discard"):
        insns = funcs.get(name, [])
        listing = "; ".join(f"{i.mnemonic} {i.operands}".strip() for i in insns)
        report.check([i.mnemonic for i in insns] == ["ret"],
                     f"x86-64 {name}: result ignored compiles to: {listing or 'nothing found'}")
    for name in ("icache_disasm_result", "icache_disasm_many_discard"):
        insns = funcs.get(name, [])
        lens = sorted({n for _, n in paths(insns, "x86_64")}) if insns else []
        report.check(bool(insns), f"x86-64 {name} (reported, not a requirement): "
                     f"{len(insns)} instructions, paths of {lens} instructions")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aarch64-obj", required=True)
    ap.add_argument("--aarch64-rlib", required=True)
    ap.add_argument("--x86-obj", required=True)
    opt = ap.parse_args()
    report = Report("disasm")
    check_aarch64(report, opt.aarch64_obj, opt.aarch64_rlib, "aarch64-linux-gnu-objdump")
    check_x86(report, opt.x86_obj, "objdump")
    return report.finish()

if __name__ == "__main__":
    sys.exit(main())
