"""The probe catalogue, read from the kernel image, and probe selection.

The probe kernel keeps one tab-separated line per probe in the non-loaded
ELF section `.nvct_catalog` (docs/protocol.md), so listing and selecting
probes needs no boot. Selection here follows the kernel's own rules
exactly: the harness must know which probes a boot is going to run.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SECTION = ".nvct_catalog"

# <manual>.<section>.<slug>: manual sdm or apm, the section as the manual
# numbers it (digits, or a capital appendix letter first), a kebab-case slug.
REQUIREMENT_ID = re.compile(r"(sdm|apm)\.(?:[0-9]+|[A-Z])(?:\.[0-9]+)*\.[a-z0-9]+(?:-[a-z0-9]+)*")


class CatalogError(Exception):
    pass


@dataclass(frozen=True)
class Probe:
    id: str
    feature: str
    description: str
    reference: str
    hidden: bool = False
    isolated: bool = False  # the harness runs it in a boot of its own
    requirements: tuple[str, ...] = ()  # ids of the requirement map (requirements/) it checks

    @property
    def group(self) -> str:
        """The probe's group: its id without the last component."""
        return self.id.rpartition(".")[0] or self.id

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "group": self.group,
            "feature": self.feature,
            "description": self.description,
            "reference": self.reference,
            "hidden": self.hidden,
            "isolated": self.isolated,
            "requirements": list(self.requirements),
        }


def read_section(image: Path, name: str) -> bytes:
    """The contents of one section of an ELF32 or ELF64 little-endian file."""
    data = image.read_bytes()
    if data[:4] != b"\x7fELF" or data[5] != 1:
        raise CatalogError(f"{image}: not a little-endian ELF file")
    is64 = data[4] == 2
    if is64:
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    else:
        (shoff,) = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)

    def header(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        if is64:
            (name_off,) = struct.unpack_from("<I", data, base)
            offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        else:
            (name_off,) = struct.unpack_from("<I", data, base)
            offset, size = struct.unpack_from("<II", data, base + 0x10)
        return name_off, offset, size

    try:
        _, str_off, _ = header(shstrndx)
        for index in range(shnum):
            name_off, offset, size = header(index)
            start = str_off + name_off
            end = data.index(b"\0", start)
            if data[start:end].decode() == name:
                return data[offset : offset + size]
    except (struct.error, ValueError) as exc:
        raise CatalogError(f"{image}: malformed ELF section table ({exc})") from None
    raise CatalogError(f"{image}: no {name} section (not an nvct probe kernel?)")


def parse_catalog(text: str, origin: str = "catalogue") -> list[Probe]:
    probes = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) == 5:  # a kernel from before requirement ids
            fields.append("")
        if len(fields) != 6:
            raise CatalogError(f"{origin}: line {number}: want 6 tab-separated fields: {line!r}")
        pid, feature, flags, description, reference, reqs = fields
        flag_set = set(flags.split(","))
        requirements = tuple(reqs.split())
        bad = [r for r in requirements if not REQUIREMENT_ID.fullmatch(r)]
        if bad:
            raise CatalogError(
                f"{origin}: line {number}: probe {pid}: bad requirement id {bad[0]!r} "
                "(want <sdm|apm>.<section>.<slug>, e.g. sdm.27.3.1.1.cr0-fixed-bits)"
            )
        probes.append(Probe(pid, feature, description, reference, hidden="hidden" in flag_set,
                            isolated="isolated" in flag_set, requirements=requirements))  # fmt: skip
    ids = [p.id for p in probes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CatalogError(f"{origin}: probe ids registered twice: {', '.join(dupes)}")
    return sorted(probes, key=lambda p: p.id.encode())


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[Probe, ...]:
    raw = read_section(Path(path), SECTION)
    return tuple(parse_catalog(raw.decode("ascii", "replace"), origin=path))


def load_catalog(image: Path) -> list[Probe]:
    """The probes compiled into a kernel image, sorted by id."""
    return list(_load(str(image), image.stat().st_mtime))


# ---- selection --------------------------------------------------------------


class SelectionError(ValueError):
    pass


def _glob_regex(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob) + r"\Z")


def split_globs(spec: str | list[str] | None) -> list[str]:
    """'a.*,-a.b' or ['a.*', '-a.b'] -> ['a.*', '-a.b']."""
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    globs = [g.strip() for item in items for g in item.split(",")]
    for glob in globs:
        body = glob[1:] if glob.startswith("-") else glob
        if not body or not re.fullmatch(r"[A-Za-z0-9_.*?-]+", body):
            what = "an empty glob" if not body else f"bad glob {glob!r}"
            raise SelectionError(
                f"bad probe selection {','.join(items)!r}: {what} (use ids, '*', '?', and a leading '-' to exclude)"
            )
    return globs


def select(
    probes: list[Probe], globs: list[str], after: str | None = None, shard: tuple[int, int] | None = None
) -> list[Probe]:
    """The probes a kernel booted with `probes=<globs> after=<after>` runs.

    The same rules as the kernel's (docs/protocol.md): start from nothing if
    the first glob is positive, else from every probe not hidden; apply the
    globs left to right; a hidden probe is matched only by a glob that
    spells out its first id component and a dot ('selftest.*', not '*');
    `shard=(K, N)` keeps positions K, K+N, ... of that; `after` applies last.
    """
    if globs and not globs[0].startswith("-"):
        chosen: set[str] = set()
    else:
        chosen = {p.id for p in probes if not p.hidden}
    for glob in globs:
        negative = glob.startswith("-")
        pattern = _glob_regex(glob[1:] if negative else glob)
        literal = glob[1:] if negative else glob
        for probe in probes:
            if probe.hidden and not literal.startswith(probe.id.split(".")[0] + "."):
                continue
            if pattern.match(probe.id):
                if negative:
                    chosen.discard(probe.id)
                else:
                    chosen.add(probe.id)
    result = [p for p in probes if p.id in chosen]
    if shard is not None:
        k, n = shard
        if not 0 <= k < n:
            raise SelectionError(f"bad shard {k}/{n}")
        result = result[k::n]
    if after is not None:
        result = [p for p in result if p.id.encode() > after.encode()]
    return result
