"""Recording a benchmark's figures in docs/BENCHMARKS.md, between its own markers."""

from __future__ import annotations

from pathlib import Path


def record_block(path: Path, begin: str, end: str, section: str, text: str) -> None:
    """Replace the block between `begin` and `end` in the page at `path` (or append it under
    a new ``## section`` heading when the page has none yet)."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + f"\n\n## {section}\n\n" + block + "\n"
    path.write_text(new, encoding="utf-8")
