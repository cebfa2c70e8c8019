#!/usr/bin/env python3
"""Sizes of the code under Sources/, as issue 29 bounds them: no file over 400 lines, no function
over 80 lines (tables aside).

    scripts/sizes.py           report every file over the limit and every function over its limit
    scripts/sizes.py --check   exit 1 when a file is over 400 lines, unless it is listed in ALLOWED
                               with a ceiling it has not grown past (a ratchet: lower the ceiling
                               or drop the entry as the file shrinks; never raise it)

`make test` runs --check. Function lengths are measured from a `func`/`init` line to the brace
that closes its body (braces inside string literals are skipped), and only reported.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_LIMIT, FUNCTION_LIMIT = 400, 80
# Files still over the limit, each with the most lines it may have until it is split.
ALLOWED = {}
DECLARATION = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|static|final|override|mutating|nonisolated|convenience|required)\s+)*(?:func\s+[\w`]+|init[?!]?)\s*[(<]")


def code_only(line):
    """The line without string literals and comments (good enough for counting braces)."""
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split("//", 1)[0]


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    for start, line in enumerate(lines):
        if not DECLARATION.match(line):
            continue
        # The body opens at the first `{` outside the signature's parentheses (a default argument
        # may hold a closure) and closes where the brace depth returns to zero.
        parens, depth, opened, done = 0, 0, False, False
        for end in range(start, len(lines)):
            for character in code_only(lines[end]):
                if character in "([":
                    parens += 1
                elif character in ")]":
                    parens -= 1
                elif character == "{" and (opened or parens == 0):
                    opened, depth = True, depth + 1
                elif character == "}" and opened:
                    depth -= 1
                    if depth == 0:
                        found.append((start + 1, end - start + 1, line.strip()[:80]))
                        done = True
                        break
            if done or (not opened and end > start and lines[end].strip() == ""):
                break  # done, or a protocol requirement with no body
    return found


def main():
    problems, report = [], []
    for folder, _, files in os.walk(os.path.join(ROOT, "Sources")):
        for file in sorted(files):
            if not file.endswith(".swift"):
                continue
            path = os.path.join(folder, file)
            relative = os.path.relpath(path, ROOT)
            count = sum(1 for _ in open(path, encoding="utf-8"))
            ceiling = ALLOWED.get(relative)
            if count > FILE_LIMIT:
                report.append(f"{relative}: {count} lines (limit {FILE_LIMIT})")
                if ceiling is None or count > ceiling:
                    problems.append(f"{relative} has {count} lines: split it (no file over {FILE_LIMIT})")
            elif ceiling is not None:
                problems.append(f"{relative} is within {FILE_LIMIT} lines now: drop it from ALLOWED in scripts/sizes.py")
            for line, length, declaration in functions(path):
                if length > FUNCTION_LIMIT:
                    report.append(f"{relative}:{line}: a function of {length} lines: {declaration}")
    if "--check" in sys.argv:
        for problem in problems:
            print("sizes: " + problem, file=sys.stderr)
        return 1 if problems else 0
    print("\n".join(report) if report else "every file and function within its limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
