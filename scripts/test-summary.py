#!/usr/bin/env python3
"""One line per test binary of a `cargo test` log (passed, failed, the failing tests), and the
total as `N passed, N failed`. Usage: scripts/test-summary.py LOG"""
import re
import sys

running = re.compile(
    r"^\s+(Running|Doc-tests) (?:unittests )?(\S+)(?: \((?:\S*/)?([^/)]+?)(?:-[0-9a-f]+)?\))?"
)
result = re.compile(r"^test result: (\w+)\. (\d+) passed; (\d+) failed")
failed_test = re.compile(r"^test (\S+) \.\.\. FAILED")

binaries = []  # [name, passed, failed, [failing tests]]
current = None
for line in open(sys.argv[1], errors="replace"):
    m = running.match(line)
    if m:
        kind, path, deps = m.groups()
        name = f"doc-tests {path}" if kind == "Doc-tests" else f"{deps or path} ({path})"
        current = [name, 0, 0, []]
        binaries.append(current)
        continue
    m = failed_test.match(line)
    if m and current is not None:
        current[3].append(m.group(1))
        continue
    m = result.match(line)
    if m and current is not None:
        current[1], current[2] = int(m.group(2)), int(m.group(3))

print("\n== tests, per binary")
for name, passed, failed, which in binaries:
    mark = "FAILED" if failed else "ok"
    detail = f": {', '.join(which)}" if which else ""
    print(f"  {mark:6} {passed:3} passed {failed:3} failed  {name}{detail}")
total_passed = sum(b[1] for b in binaries)
total_failed = sum(b[2] for b in binaries)
print(f"{total_passed} passed, {total_failed} failed")
