#!/usr/bin/python3
"""Adds up JUnit XML reports (lit, pytest) into one line `N passed, N failed`.

Exits non-zero when a report is missing or unreadable, or when nothing ran,
so that a run that tested nothing cannot look green.
"""

import sys
import xml.etree.ElementTree as ET


def count(path):
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(paths):
    totals = [0, 0, 0]
    for path in paths:
        try:
            counts = count(path)
        except (OSError, ET.ParseError) as err:
            print(f"cannot read test report {path}: {err}", file=sys.stderr)
            return 2
        totals = [a + b for a, b in zip(totals, counts)]
    passed, failed, skipped = totals
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    if passed + failed == 0:
        print("no test ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
