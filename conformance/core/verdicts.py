"""The verdicts a probe can get (docs/verdicts.md)."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Verdict(enum.Enum):
    """One probe's outcome at one level, ordered best to worst."""

    PASS = "PASS"
    SKIP = "SKIP"
    FAIL = "FAIL"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    CRASH = "CRASH"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def is_bad(self) -> bool:
        """True for the verdicts that make `nvct run` exit 1."""
        return self.rank >= Verdict.FAIL.rank

    @classmethod
    def parse(cls, text: str) -> Verdict:
        try:
            return cls(text.upper())
        except ValueError:
            raise ValueError(f"unknown verdict {text!r}") from None


_ORDER = list(Verdict)

# Verdicts the probe kernel may report itself; the harness adds the others.
KERNEL_VERDICTS = frozenset({Verdict.PASS, Verdict.FAIL, Verdict.SKIP, Verdict.ERROR})


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The worst of the verdicts (PASS for none)."""
    return max(verdicts, key=lambda v: v.rank, default=Verdict.PASS)
