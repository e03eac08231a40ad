#!/usr/bin/python3
"""Checks that every code block of a Markdown file preceded by
`<!-- from: PATH -->` appears verbatim in PATH (relative to the repository),
so documentation copied from tests cannot go stale."""

import re
import sys
from pathlib import Path


def main(doc, root):
    text = Path(doc).read_text()
    pattern = re.compile(r"<!-- from: (\S+) -->\n```[a-z]*\n(.*?)\n```", re.S)
    failures = 0
    count = 0
    for match in pattern.finditer(text):
        count += 1
        source = (Path(root) / match.group(1)).read_text()
        if match.group(2) not in source:
            failures += 1
            first = match.group(2).splitlines()[0]
            print(f"{doc}: the block starting '{first}' is not in {match.group(1)}")
    if count == 0:
        print(f"{doc}: no '<!-- from: ... -->' blocks")
        return 1
    print(f"{count} snippets checked, {failures} stale")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
