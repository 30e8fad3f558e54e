"""Splice docs/*.md (one file per part, written with the code) into README.md between markers.

    .venv/bin/python scripts/merge_docs.py

The README keeps its own sections; the parts go between ``<!-- PARTS -->`` and ``<!-- /PARTS -->``,
with headings shifted so each part's top heading is a level-2 heading.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["quality", "synth", "feedback", "trainer", "evals"]
START, END = "<!-- PARTS -->", "<!-- /PARTS -->"


def shift(text: str) -> str:
    in_code = False
    levels = []
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^(#+) ", line)):
            levels.append(len(m.group(1)))
    delta = 2 - min(levels) if levels else 0
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^(#+) ", line)):
            line = "#" * (len(m.group(1)) + delta) + line[len(m.group(1)):]
        out.append(line)
    return "\n".join(out).strip() + "\n"


def main() -> None:
    readme = (ROOT / "README.md").read_text()
    parts = [shift((ROOT / "docs" / f"{name}.md").read_text()) for name in ORDER if (ROOT / "docs" / f"{name}.md").exists()]
    block = START + "\n\n" + "\n".join(parts) + "\n" + END
    if START in readme:
        readme = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, readme, flags=re.S)
    else:
        readme = readme.replace("## Python API", block + "\n\n## Python API", 1)
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
