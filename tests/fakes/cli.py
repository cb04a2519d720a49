"""`nvct` in a child process with a FAKE remote host behind the esxi and
hyperv backends: python tests/fakes/cli.py run -p profile.yaml ...

The CLI is the real one (conformance.cli.main); only the library under the
backend (pyVmomi or pypsrp) is replaced by the fake of tests/fakes, set up
from the JSON in the environment variable NVCT_FAKE_HOST:

    {"backend": "esxi" or "hyperv", "password": "...", "user": "...",
     "guest": true,                       # play a guest that runs PROBES
     "fail": {"<operation>": "a message" or {"raise": "<exception>", "args": [...], "kwargs": {...}}},
     "preflight_reply": {...}}            # hyperv: what the pre-flight script returns

"<exception>" is a dotted name: vim.fault.NoPermission (real pyVmomi
types), or module.Name (socket.gaierror, http.client.IncompleteRead). The
boot ISO is a stand-in file, as in the in-process tests.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes import PROBES, probe_kernel_output  # noqa: E402


def exception(spec: dict) -> BaseException:
    name = spec["raise"]
    if name.startswith("vim."):
        from pyVmomi import vim  # type: ignore[import-not-found]

        kind = vim
        for part in name.split(".")[1:]:
            kind = getattr(kind, part)
    else:
        module, _, attr = name.rpartition(".")
        kind = getattr(importlib.import_module(module), attr)
    return kind(*spec.get("args", []), **spec.get("kwargs", {}))


def main() -> int:
    spec = json.loads(os.environ["NVCT_FAKE_HOST"])
    from conformance.backends import esxi, hyperv, remote
    from conformance.cli import main as nvct

    def make_iso(kernel, cmdline, dest, firmware):
        dest.write_bytes(b"FAKE ISO " + cmdline.encode())
        return dest

    remote.make_boot_iso = make_iso
    output = probe_kernel_output(PROBES) if spec.get("guest") else []
    pieces = [b"".join(output)[i : i + 64] for i in range(0, len(b"".join(output)), 64)]
    fail = {k: exception(v) if isinstance(v, dict) else v for k, v in spec.get("fail", {}).items()}
    if spec["backend"] == "esxi":
        from fakes.vsphere import FakeVSphere

        fake = FakeVSphere(user=spec.get("user", "nvct"), password=spec["password"], guest_output=pieces,
                           power_off_at_end=True)  # fmt: skip
        fake.fail.update(fail)
        esxi.VSphereApi = lambda: fake  # type: ignore[assignment,misc]
    else:
        from fakes.hyperv import FakeHypervHost

        host = FakeHypervHost(user=spec.get("user", "LAB\\nvct"), password=spec["password"], guest_output=pieces,
                              power_off_at_end=True)  # fmt: skip
        host.fail.update(fail)
        host.preflight_reply = spec.get("preflight_reply")
        hyperv.PsrpApi = lambda: host  # type: ignore[assignment,misc]
    return nvct(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
