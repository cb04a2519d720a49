"""A profile's stack as backends: which hypervisor runs the probe kernel at
which level."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends import BACKENDS, Backend
from ..core.profile import Profile


@dataclass
class Level:
    number: int  # the level the probe kernel runs at
    backend: Backend  # the hypervisor that runs it, at level number - 1


def build_stack(profile: Profile) -> list[Level]:
    levels: list[Level] = []
    for spec in profile.stack:
        cls = BACKENDS[spec.backend]
        if cls.nestable:  # the level below boots it (None: a real host's hypervisor at L0)
            below = levels[-1].backend if levels else None
            backend = cls(spec.settings, spec.level, below=below)  # type: ignore[call-arg]
        else:
            backend = cls(spec.settings, spec.level)
        levels.append(Level(number=spec.level + 1, backend=backend))
    return levels


def release_stack(levels: list[Level]) -> None:
    """Stop what the backends kept running between boots, the top level first
    (an appliance kept at L2 runs inside one kept at L1)."""
    for level in reversed(levels):
        level.backend.release()
