#!/usr/bin/env python3
"""Where the time of a nested run goes: `nvct run` with every console line
and every command the harness types logged with its time.

    python bench/split.py --log /tmp/split.log -- -p profiles/bochs-kvm-kvm-l3.yaml --probes 'cpu.*'

Everything after `--` is `nvct run`'s own arguments. Each log line is
`SECONDS  EVENT  TEXT`: `open` when a hypervisor's console is made (its
process has just started), `line` for a serial line, `own` for the
hypervisor's own output, `send` for what the harness typed. The appliance
boots quietly, so the landmarks are GRUB's "nvct: GRUB has loaded" line (the
bochs backend's ISO prints it before `boot`), the appliances' READY lines,
the modprobe commands, and the probe kernel's HELLO and END records.
Not a test; docs/nesting.md quotes what it measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance import cli  # noqa: E402
from conformance.backends.transports import pty as pty_console  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("run", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    run = args.run[1:] if args.run[:1] == ["--"] else args.run
    start = time.monotonic()
    out = open(args.log, "w", buffering=1)

    def note(event: str, text: str) -> None:
        out.write(f"{time.monotonic() - start:9.2f}  {event:5} {text}\n")

    cls = pty_console.PtyConsole
    init, emit, send = cls.__init__, cls._emit, cls.send

    def logged_init(self, child, *a, **kw):  # type: ignore[no-untyped-def]
        init(self, child, *a, **kw)
        note("open", f"{self.label} pid {child.pid}")

    def logged_emit(self, fd, raw):  # type: ignore[no-untyped-def]
        note("line" if self._is_serial(fd) else "own", raw.decode("latin-1").rstrip("\r")[:300])
        emit(self, fd, raw)

    def logged_send(self, text):  # type: ignore[no-untyped-def]
        note("send", text.rstrip("\n")[:300])
        send(self, text)

    cls.__init__, cls._emit, cls.send = logged_init, logged_emit, logged_send  # type: ignore[method-assign]
    try:
        return cli.main(["run", *run])
    finally:
        note("end", "")
        out.close()


if __name__ == "__main__":
    sys.exit(main())
