"""The pass/fail bookkeeping shared by .ci/icount.py and .ci/disasm.py: one line per check,
then a summary line "<name>: N passed, M failed"."""


class Report:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, ok, text):
        print(("ok   " if ok else "FAIL ") + text, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def finish(self):
        """Prints the summary; the process exit status."""
        print(f"\n{self.name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
