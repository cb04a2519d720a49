"""The ESXi backend: the VM it specifies, its pre-flight facts, its clean-up
on every path, and that no secret leaks. All but the last test run against
FAKES (tests/fakes/vsphere.py), which stand in for pyVmomi and a host; the
live test runs only when NVCT_ESXI_URL names a real host."""

from __future__ import annotations

import json
import os
import threading
import traceback

import pytest
from conftest import ROOT, nvct
from fakes import PROBES, payload, probe_kernel_output, run
from fakes.vsphere import FakeVim, FakeVSphere

from conformance.backends import BACKENDS, BackendUnavailable, BootFailed, Payload, remote
from conformance.backends import esxi as esxi_mod
from conformance.backends.esxi import EsxiBackend, EsxiSettings, build_config_spec
from conformance.backends.transports import ConsoleTimeout
from conformance.core.profile import ProfileError, load_profile
from conformance.core.verdicts import Verdict

ENV = {"NVCT_ESXI_USER": "nvct", "NVCT_ESXI_PASSWORD": "fake-password"}


def pieces(lines: list[bytes], size: int = 37) -> list[bytes]:
    """The guest's output cut at odd places, as a file grows between polls."""
    data = b"".join(lines)
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture(autouse=True)
def fake_iso(monkeypatch):
    """The boot ISO is made by media.make_iso (tested with QEMU and Bochs);
    here a stand-in file, so these tests need no GRUB."""

    def make(kernel, cmdline, dest, firmware):
        dest.write_bytes(b"FAKE ISO " + cmdline.encode())
        return dest

    monkeypatch.setattr(remote, "make_boot_iso", make)  # RemoteVmBackend.boot_payload makes it


def backend(api: FakeVSphere, env: dict | None = None, **settings) -> EsxiBackend:
    s = EsxiSettings(host="esx1.example.test", **{"poll_interval": 0.01, **settings})
    b = EsxiBackend(s, 0, api=api, environ=ENV if env is None else env, sleep=lambda _: None)
    b.preflight()
    return b


# ---- the VM specification ------------------------------------------------------------------


def devices(spec) -> dict[str, object]:
    return {change.device._type.rsplit(".", 1)[1]: change.device for change in spec.deviceChange}


@pytest.mark.parametrize("firmware", ["bios", "efi"])
def test_spec_exposes_nesting_with_cdrom_and_com1_file(firmware):
    s = EsxiSettings(host="h", firmware=firmware, memory=512, cpus=2)
    spec = build_config_spec(FakeVim(), s, "nvct-0001", "datastore1", "nvct-0001")
    assert spec._type == "vim.vm.ConfigSpec"
    assert spec.nestedHVEnabled is True
    assert spec.firmware == firmware
    assert (spec.memoryMB, spec.numCPUs, spec.guestId) == (512, 2, "otherGuest64")
    assert spec.files.vmPathName == "[datastore1] nvct-0001/"
    assert all(change.operation == "add" for change in spec.deviceChange)
    found = devices(spec)
    assert set(found) == {"VirtualAHCIController", "VirtualCdrom", "VirtualSerialPort"}
    sata, cdrom, com1 = found["VirtualAHCIController"], found["VirtualCdrom"], found["VirtualSerialPort"]
    assert cdrom.controllerKey == sata.key < 0  # the CD-ROM sits on the controller added with it
    assert cdrom.backing._type == "vim.vm.device.VirtualCdrom.IsoBackingInfo"
    assert cdrom.backing.fileName == "[datastore1] nvct-0001/nvct.iso"
    assert com1.backing._type == "vim.vm.device.VirtualSerialPort.FileBackingInfo"
    assert com1.backing.fileName == "[datastore1] nvct-0001/com1.log"
    assert com1.yieldOnPoll is True
    for device in (cdrom, com1):
        assert device.connectable.startConnected is True
    assert [d._type for d in spec.bootOptions.bootOrder] == ["vim.vm.BootOptions.BootableCdromDevice"]
    if firmware == "efi":
        assert spec.bootOptions.efiSecureBootEnabled is False
    else:
        assert not hasattr(spec.bootOptions, "efiSecureBootEnabled")
    assert not hasattr(spec, "version")


def test_spec_hardware_version():
    spec = build_config_spec(FakeVim(), EsxiSettings(host="h", hardware_version="vmx-19"), "n", "ds", "n")
    assert spec.version == "vmx-19"


def test_spec_with_real_pyvmomi_types():
    """pyVmomi checks every field name and type when an object is built: the
    same spec, built from its real vim types."""
    pyVmomi = pytest.importorskip("pyVmomi", reason="pyVmomi not installed (pip install nvct[esxi])")
    vim = pyVmomi.vim
    for firmware in ("bios", "efi"):
        spec = build_config_spec(vim, EsxiSettings(host="h", firmware=firmware, hardware_version="vmx-19"),
                                 "nvct-0001", "datastore1", "nvct-0001")  # fmt: skip
        assert isinstance(spec, vim.vm.ConfigSpec)
        assert spec.nestedHVEnabled is True and spec.firmware == firmware
        kinds = [type(c.device) for c in spec.deviceChange]
        assert kinds == [vim.vm.device.VirtualAHCIController, vim.vm.device.VirtualCdrom,
                         vim.vm.device.VirtualSerialPort]  # fmt: skip
        assert isinstance(spec.deviceChange[2].device.backing, vim.vm.device.VirtualSerialPort.FileBackingInfo)
        assert isinstance(spec.deviceChange[1].device.backing, vim.vm.device.VirtualCdrom.IsoBackingInfo)
        assert spec.deviceChange[0].operation == vim.vm.device.VirtualDeviceSpec.Operation.add


# ---- settings and profiles -------------------------------------------------------------------


def test_registered_and_template_loads():
    assert BACKENDS["esxi"] is EsxiBackend
    profile = load_profile(ROOT / "profiles" / "esxi.yaml")
    (spec,) = profile.stack
    assert spec.backend == "esxi"
    assert spec.settings.password_env == "NVCT_ESXI_PASSWORD"


def test_profile_cannot_hold_a_password(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("stack:\n  - backend: esxi\n    host: esx1\n    password: hunter2-in-profile\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert "password" in str(err.value) and ":4:" in str(err.value)
    assert "hunter2-in-profile" not in str(err.value)
    path.write_text("stack:\n  - backend: esxi\n    host: esx1\n    password_env: hunter2 in profile\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert "NAME of an environment variable" in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.parametrize("key,value", [("firmware", "uefi"), ("memory", 8), ("hardware_version", "19"),
                                       ("host", "https://esx1/sdk")])  # fmt: skip
def test_bad_settings_name_the_key(tmp_path, key, value):
    path = tmp_path / "p.yaml"
    host = "" if key == "host" else "    host: esx1\n"
    path.write_text(f"stack:\n  - backend: esxi\n{host}    {key}: {json.dumps(value)}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"stack[0].{key}" in str(err.value)


# ---- pre-flight -------------------------------------------------------------------------------------


def test_preflight_reports_nesting_facts():
    api = FakeVSphere()
    b = backend(api)
    facts = b.describe()["preflight"]
    assert facts["esxi.nested_hv_supported"] is True
    assert facts["esxi.nesting_ok"] is True
    assert facts["esxi.feature.cpuid.VMX"] == "1" and facts["esxi.feature.misc.hv.capable"] == "1"
    assert not any("SSE3" in k for k in facts)  # only what bears on nesting
    assert facts["esxi.datastore"] == "datastore1"  # the one with the most free space
    assert facts["esxi.cpu_vendor"] == "intel"
    assert b.version().startswith("FAKE VMware ESXi")
    assert api.leftovers() == {}  # the pre-flight session logged out


def test_host_without_nesting_skips_the_level(tmp_path):
    api = FakeVSphere(nested_supported=False)
    b = backend(api)
    assert b.facts["esxi.nesting_ok"] is False
    assert "nestedHVSupported=false" in b.facts["esxi.nesting_problems"][0]
    outcome = run(b, tmp_path)
    assert {r.verdict for r in outcome.results} == {Verdict.SKIP}
    assert "nestedHVSupported=false" in outcome.results[0].detail
    assert not any(line.startswith("CreateVM") for line in api.log)


def test_without_pyvmomi_says_how_to_install(monkeypatch):
    with pytest.raises(BackendUnavailable, match=r"pip install nvct\[esxi\]"):
        backend(FakeVSphere(loaded=False))
    import builtins

    real_import = builtins.__import__

    def no_pyvmomi(name, *args, **kwargs):
        if name.startswith("pyVmomi") or name.startswith("pyVim"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyvmomi)
    with pytest.raises(BackendUnavailable, match=r"pip install nvct\[esxi\]"):
        EsxiBackend(EsxiSettings(host="h"), 0).preflight()


def test_missing_credentials_name_the_variable():
    with pytest.raises(BackendUnavailable, match="NVCT_ESXI_PASSWORD"):
        backend(FakeVSphere(), env={"NVCT_ESXI_USER": "nvct"})
    with pytest.raises(BackendUnavailable, match="MY_USER"):
        backend(FakeVSphere(), env={}, user_env="MY_USER")


def test_tls_verified_unless_told(tmp_path):
    api = FakeVSphere()
    backend(api)
    import ssl

    assert api.contexts[-1].verify_mode == ssl.CERT_REQUIRED
    backend(api, verify_tls=False)
    assert api.contexts[-1].verify_mode == ssl.CERT_NONE


# ---- boots, and the clean-up on every path -------------------------------------------------------


def test_run_to_end_then_clean_up(tmp_path):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api)
    outcome = run(b, tmp_path)
    assert [(r.probe, r.verdict) for r in outcome.results] == [(p, Verdict.PASS) for p in PROBES]
    runtime = outcome.info.hypervisor["runtime"]
    assert runtime["esxi.vm_nested_hv_enabled"] is True and runtime["esxi.vm_firmware"] == "bios"
    assert outcome.info.hypervisor["preflight"]["esxi.nested_hv_supported"] is True
    assert api.leftovers() == {}
    order = [line.split()[0] for line in api.log if not line.startswith(("runtime", "GET"))]
    assert order == ["connect", "disconnect",  # pre-flight
                     "connect", "MakeDirectory", "PUT", "CreateVM_Task", "PowerOnVM_Task",
                     "PowerOffVM_Task", "Destroy_Task", "DeleteDatastoreFile_Task", "disconnect"]  # fmt: skip
    iso = api.specs[0].deviceChange[1].device.backing.fileName
    assert iso.startswith("[datastore1] nvct-") and iso.endswith("/nvct.iso")


def test_vm_that_powers_off_ends_the_console(tmp_path):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES[:1])[:3]), power_off_at_end=True)
    b = backend(api)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        lines = []
        while (line := console.readline(2.0)) is not None:
            lines.append(line)
        assert "is poweredOff" in console.describe_end()
    assert any("HELLO" in line for line in lines) and lines[0] == "GRUB loading."
    assert api.leftovers() == {}


def test_timeout_cleans_up(tmp_path):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES, hang_in=PROBES[-1])))
    b = backend(api)
    outcome = run(b, tmp_path, probe_timeout=1.0)
    assert [r.verdict for r in outcome.results] == [Verdict.PASS, Verdict.PASS, Verdict.TIMEOUT]
    assert api.leftovers() == {}


def test_readline_timeout_raises(tmp_path):
    api = FakeVSphere(guest_output=[])
    b = backend(api)
    with pytest.raises(ConsoleTimeout):
        with b.boot_payload(payload(tmp_path), tmp_path) as console:
            console.readline(0.05)
    assert api.leftovers() == {}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_or_interrupt_cleans_up(tmp_path, error):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api)
    with pytest.raises(error):
        with b.boot_payload(payload(tmp_path), tmp_path) as console:
            console.readline(1.0)
            assert api.vms and api.folders  # the VM runs
            raise error()
    assert api.leftovers() == {}


@pytest.mark.parametrize("step,left_behind", [("MakeDirectory", []), ("upload", ["MakeDirectory"]),
                                              ("CreateVM", ["MakeDirectory"]),
                                              ("PowerOn", ["MakeDirectory", "CreateVM_Task"])])  # fmt: skip
def test_failed_step_is_bootfailed_and_cleans_up(tmp_path, step, left_behind):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api)
    api.fail[step] = f"fake fault in {step}"
    with pytest.raises(BootFailed) as err:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pytest.fail("the boot should not have come up")
    assert step in str(err.value) or "HTTP 500" in str(err.value)
    assert api.leftovers() == {}
    if "CreateVM_Task" in left_behind:
        assert any(line.startswith("Destroy_Task") for line in api.log)


def test_task_timeout_cleans_up(tmp_path):
    """CreateVM_Task never finishes within task_timeout, but the host made
    the VM: the boot fails saying so, and the clean-up finds the VM by its
    name and destroys it (FAKE: the simulator finishes every task before it
    answers, test_esxi_vcsim.py)."""
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api, task_timeout=0.2)
    api.fail["CreateVM-running"] = "yes"
    with pytest.raises(BootFailed, match=r"creating the VM nvct-\w+: the task did not finish within 0.2 s"):
        with b.boot_payload(payload(tmp_path), tmp_path):
            pytest.fail("the boot should not have come up")
    assert any(line.startswith("Destroy_Task") for line in api.log)
    assert api.leftovers() == {}


def test_question_ends_the_console_and_cleans_up(tmp_path):
    """A VM stopped on a question (ESXi's answer to a triple fault): the
    console ends with the question's text; the VM is powered off and goes
    (FAKE: the simulator never asks a question)."""
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES[:1])[:3]))
    b = backend(api)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        vm = next(iter(api.vms.values()))
        vm.question = type("Question", (), {"text": "The CPU has been disabled by the guest operating system."})()
        while console.readline(2.0) is not None:
            pass
        assert "stopped with a question: The CPU has been disabled" in console.describe_end()
    assert any(line.startswith("PowerOffVM_Task") for line in api.log)
    assert api.leftovers() == {}


def test_failed_destroy_says_what_is_left(tmp_path, caplog):
    api = FakeVSphere(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api)
    api.fail["Destroy"] = "fake: the VM is locked"
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        console.readline(1.0)
        name = next(iter(api.vms))
    assert f"VM {name} is left" in caplog.text and "delete it by hand" in caplog.text
    assert list(api.vms) == [name] and not api.folders and not api.sessions  # the rest went


def test_kill_from_another_thread_stops_reading(tmp_path):
    api = FakeVSphere(guest_output=[])
    b = backend(api, poll_interval=0.05)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        threading.Timer(0.2, console.kill).start()
        assert console.readline(30.0) is None
    assert api.leftovers() == {}


def test_appliance_payload_refused(tmp_path):
    b = backend(FakeVSphere())
    with pytest.raises(BackendUnavailable, match="only the probe kernel"):
        with b.boot_payload(Payload(kernel=tmp_path / "k", append="", probe=False), tmp_path):
            pass


# ---- secrets --------------------------------------------------------------------------------------------


def test_secret_never_shown(tmp_path, caplog):
    secret = "S3cr3t-planted-%s" % os.getpid()
    env = {"NVCT_ESXI_USER": "nvct", "NVCT_ESXI_PASSWORD": secret}
    # A careless library that echoes the password in its error.
    api = FakeVSphere(password=secret)
    api.fail["login"] = "login failed for password {password}"
    with pytest.raises(BackendUnavailable) as err:
        backend(api, env=env)
    shown = [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
    # A failure after login, with a fault that echoes the session cookie.
    api = FakeVSphere(password=secret, guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(api, env=env)
    api.fail["CreateVM"] = "fake fault"
    with pytest.raises(BootFailed) as err2:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    shown += [str(err2.value), "".join(traceback.format_exception(err2.value)), caplog.text, *api.log,
              json.dumps(b.describe(), default=str)]  # fmt: skip
    for text in shown:
        assert secret not in text
        for cookie in api.cookies_seen:
            assert cookie not in text
    assert "***" in str(err.value)  # the echo was there, and was scrubbed


# ---- live ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("NVCT_ESXI_URL"),
    reason="live test: set NVCT_ESXI_URL (and NVCT_ESXI_USER, NVCT_ESXI_PASSWORD) to a real ESXi host",
)
def test_live_esxi(tmp_path):
    """Boots the probe kernel on a real ESXi host: `nvct run` with a profile
    made from the environment (docs/backends/esxi.md)."""
    from urllib.parse import urlparse

    url = os.environ["NVCT_ESXI_URL"]
    parsed = urlparse(url if "//" in url else f"https://{url}")
    lines = ["name: esxi-live", "stack:", "  - backend: esxi", f"    host: {parsed.hostname}"]
    if parsed.port:
        lines.append(f"    port: {parsed.port}")
    for key, var in (("datastore", "NVCT_ESXI_DATASTORE"), ("esxi_host", "NVCT_ESXI_HOST"),
                     ("datacenter", "NVCT_ESXI_DATACENTER")):  # fmt: skip
        if os.environ.get(var):
            lines.append(f"    {key}: {json.dumps(os.environ[var])}")
    if os.environ.get("NVCT_ESXI_INSECURE") == "1":
        lines.append("    verify_tls: false")
    lines += ["timeouts:", "  boot: 300", "  probe: 60"]
    profile = tmp_path / "esxi-live.yaml"
    profile.write_text("\n".join(lines) + "\n")
    record_path = tmp_path / "run.json"
    proc = nvct("run", "--profile", str(profile), "--probes", "cpu.*,vmx.basic*,svm.basic*", "-o",
                str(record_path), timeout=3600)  # fmt: skip
    assert record_path.exists(), proc.stderr
    record = json.loads(record_path.read_text())
    assert record["status"] == "complete", proc.stderr
    level = record["levels"][0]
    assert level["hypervisor"]["backend"] == "esxi"
    assert level["hypervisor"]["preflight"]["esxi.nested_hv_supported"] in (True, False)
    assert level["kernel"].get("build"), f"the probe kernel never said HELLO: {level['problems']}"
    assert record["results"] and not any(r["verdict"] == "CRASH" for r in record["results"])


# ---- the real transport pieces, with no host ------------------------------------------------------------


def test_session_cookie_from_real_pyvmomi_stub():
    pyVmomi = pytest.importorskip("pyVmomi", reason="pyVmomi not installed (pip install nvct[esxi])")
    stub = pyVmomi.SoapStubAdapter(host="localhost", port=443)
    stub.cookie = 'vmware_soap_session="52ab-cd"; Path=/; HttpOnly; Secure;'  # as ESXi's Set-Cookie leaves it
    si = pyVmomi.vim.ServiceInstance("ServiceInstance", stub)
    assert esxi_mod.session_cookie(si) == 'vmware_soap_session="52ab-cd"'


def test_http_put_and_ranged_get_over_tls(tmp_path):
    """VSphereApi.http against a local HTTPS server (loopback, a throw-away
    self-signed certificate): the upload body, its length, the Range header."""
    import http.server
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (Debian package openssl)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(("PUT", self.path, self.headers["Cookie"], body))
            self.send_response(201)
            self.end_headers()

        def do_GET(self):
            seen.append(("GET", self.path, self.headers["Cookie"], self.headers["Range"]))
            self.send_response(206)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"abc")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = esxi_mod.VSphereApi()
        b = EsxiBackend(EsxiSettings(host="127.0.0.1", ca_file=str(cert)), 0)
        iso = tmp_path / "nvct.iso"
        iso.write_bytes(b"ISO" * 1000)
        port = server.server_address[1]
        unverified = EsxiBackend(EsxiSettings(host="h", verify_tls=False), 0)._ssl_context()
        with open(iso, "rb") as body:
            headers = {"Cookie": "c=1", "Content-Length": "3000"}
            status, _ = api.http("PUT", "127.0.0.1", port, "/folder/n/nvct.iso?dsName=ds", headers, body, unverified)
        assert status == 201 and seen[-1] == ("PUT", "/folder/n/nvct.iso?dsName=ds", "c=1", b"ISO" * 1000)
        status, data = api.http("GET", "127.0.0.1", port, "/folder/n/com1.log", {"Cookie": "c=1", "Range": "bytes=5-"},
                                None, b._ssl_context())  # fmt: skip
        assert (status, data) == (206, b"abc") and seen[-1][3] == "bytes=5-"
        with pytest.raises(ssl.SSLError):  # verify_tls without the CA: refused
            api.http("GET", "127.0.0.1", port, "/", {}, None, EsxiBackend(EsxiSettings(host="h"), 0)._ssl_context())
    finally:
        server.shutdown()
        server.server_close()
