"""The pass/fail bookkeeping shared by .ci/icount.py and .ci/disasm.py: one line per check,
then a summary line "<name>: N passed, M failed"."""


class Report:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, ok, text):
        print(("ok   " if ok else "FAIL ") + text, flush=True)
        self.passed += bool(ok)
        self.failed += not ok

    def finish(self):
        """Prints the summary; the process exit status."""
        print(f"\n{self.name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
