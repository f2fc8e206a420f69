"""Load-time problems of a rules file, each pinned to ``file:line:col``.

The loader collects every problem it can find before giving up, so a rule author fixes a
broken file in one round trip instead of one error at a time. `RulesFileError` carries them all
and prints one ``file:line:col: message`` line per problem (the format editors and CI parse).
"""

from __future__ import annotations

from dataclasses import dataclass

from fraud.errors import RulesError

__all__ = ["Problem", "RulesFileError"]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a rules (or fixtures) file. `line` and `col` are 1-based."""

    file: str
    line: int
    col: int
    message: str
    rule_id: str = ""

    def __str__(self) -> str:
        where = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class RulesFileError(RulesError):
    """A rules file failed to load; `problems` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
