"""Secrets of the remote backends (esxi, hyperv) in hostile and careless
input (issue 13, item 6): every escaped and encoded form of a password or
session cookie is scrubbed from messages, run records and reports; a
password pasted as the value of password_env is never repeated; whatever
the library under a backend raises ends as one scrubbed line, never a
traceback.

The hosts here are FAKES (tests/fakes/vsphere.py, tests/fakes/hyperv.py):
they echo secrets the way careless servers and libraries do (an XML-escaped
SOAP fault, a URL in an error, a JSON error body, a Basic Authorization
header) and raise what pyVmomi, pypsrp, sockets and http.client raise. They
say nothing about what a real ESXi or Hyper-V host sends."""

from __future__ import annotations

import base64
import html
import http.client
import json
import os
import socket
import ssl
import sys
import urllib.parse
import xml.sax.saxutils

import pytest
from conftest import ROOT
from fakes import PROBES, payload, probe_kernel_output, run
from fakes.hyperv import FakeHypervHost
from fakes.vsphere import FakeFault, FakeVSphere

from conformance.backends import BackendUnavailable, BootFailed, remote
from conformance.backends.esxi import EsxiBackend, EsxiSettings
from conformance.backends.hyperv import HypervBackend, HypervSettings
from conformance.backends.secrets import MASK, Secret, flatten, scrub
from conformance.core.profile import ProfileError, load_profile

# A password with every character that XML, URLs, JSON and shells treat specially.
PASSWORD = "p&ss<w>rd\"q'uo te/b\\s+%;é€"
USER = "nvct"


def encodings(secret: str, user: str = USER) -> dict[str, str]:
    """Each form a secret takes on its way into a message."""
    raw = secret.encode()
    xml_escaped = xml.sax.saxutils.escape(secret, {'"': "&quot;", "'": "&apos;"})
    return {
        "raw": secret,
        "xml (&amp; &lt; &gt; &quot; &apos;)": xml_escaped,
        "xml (&amp; &lt; &gt; only)": xml.sax.saxutils.escape(secret),
        "html.escape, quotes kept": html.escape(secret, quote=False),
        "html.escape (&#x27;)": html.escape(secret),
        "xml escaped twice": html.escape(html.escape(secret)),
        "decimal character references": "".join(f"&#{ord(c)};" for c in secret),
        "hex character references": "".join(f"&#x{ord(c):X};" for c in secret),
        "url quote": urllib.parse.quote(secret),
        "url quote, nothing safe": urllib.parse.quote(secret, safe=""),
        "url quote_plus": urllib.parse.quote_plus(secret),
        "url quote, lower-case hex": urllib.parse.quote(secret, safe="").lower(),
        "json": json.dumps(secret)[1:-1],
        "json, not ascii": json.dumps(secret, ensure_ascii=False)[1:-1],
        "python repr": repr(secret)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64 url-safe, no padding": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "base64 of user:secret (HTTP Basic)": base64.b64encode(f"{user}:{secret}".encode()).decode(),
        "Authorization header": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode(),
    }


def leaks(text: str, secret: str, user: str = USER) -> list[str]:
    """The forms of `secret` found in `text`, also inside longer base64."""
    found = [name for name, form in encodings(secret, user).items() if form in text]
    for shift in (1, 2):  # the secret inside a longer base64 text, at each alignment
        inner = base64.b64encode(bytes(shift) + secret.encode() + b"\0\0").decode()[4:-4]
        if inner in text:
            found.append(f"base64 at offset {shift}")
    return found


# ---- the scrubbing itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(encodings(PASSWORD)))
def test_scrub_covers_each_encoding(name):
    form = encodings(PASSWORD)[name]
    text = f"fault: <msg>login failed for [{form}] at 10:00</msg>"
    out = scrub(text, [Secret(PASSWORD)], users=[USER])
    assert leaks(out, PASSWORD) == []
    assert out.startswith("fault: <msg>login failed for [") and out.endswith("] at 10:00</msg>")
    assert MASK in out


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_scrub_finds_a_secret_inside_longer_base64(shift):
    blob = base64.b64encode(b"x" * shift + PASSWORD.encode() + b"tail bytes").decode()
    out = scrub(f"body={blob}", [PASSWORD])
    assert MASK in out and leaks(out, PASSWORD) == []


def test_scrub_handles_mixed_forms_and_many_secrets():
    cookie = "52b9d8f1-3a0c-4c1e-9e2b-6d0f1b7a4c21"
    text = (f"p&amp;ss&lt;w>rd&#34;q'uo%20te/b\\\\s+%25;é€ and cookie vmware_soap_session=\"{cookie}\" "
            f"and {urllib.parse.quote(cookie)}")  # fmt: skip
    out = scrub(text, [PASSWORD, cookie, None, ""])
    assert out == '*** and cookie vmware_soap_session="***" and ***'


def test_scrub_leaves_text_without_secrets_alone():
    text = "Cannot complete login due to an incorrect user name or password. &amp; %41 \\u0041 QUJD"
    assert scrub(text, [PASSWORD, "hunter2"], users=[USER]) == text


def test_flatten():
    assert flatten("(vim.fault.NoPermission) {\n   msg = 'x',\r\n\tprivilegeId = 'System.View'\n}") == (
        "(vim.fault.NoPermission) { msg = 'x', privilegeId = 'System.View' }"
    )
    assert flatten("red \x1b[31mtext\x07\x00") == "red \\x1b[31mtext\\x07\\x00"


def test_secret_is_never_its_own_str():
    secret = Secret(PASSWORD)
    assert PASSWORD not in f"{secret} {secret!r} {[secret]}"


# ---- esxi -------------------------------------------------------------------------------------------------

ESXI_ENV = {"NVCT_ESXI_USER": USER, "NVCT_ESXI_PASSWORD": PASSWORD}


@pytest.fixture(autouse=True)
def fake_iso(monkeypatch):
    def make(kernel, cmdline, dest, firmware):  # a stand-in for media.make_iso: these tests need no GRUB
        dest.write_bytes(b"FAKE ISO " + cmdline.encode())
        return dest

    monkeypatch.setattr(remote, "make_boot_iso", make)


def esxi(api: FakeVSphere, env: dict | None = None, **settings) -> EsxiBackend:
    s = EsxiSettings(host="esx1.example.test", **{"poll_interval": 0.01, **settings})
    return EsxiBackend(s, 0, api=api, environ=ESXI_ENV if env is None else env, sleep=lambda _: None)


def every_form(secret: str) -> str:
    """A careless server's error that carries the secret in every form."""
    return " | ".join(encodings(secret).values())


def assert_clean(text: str, *secrets: str) -> None:
    assert "Traceback" not in text
    for secret in secrets:
        assert leaks(text, secret) == [], text


def no_permission() -> BaseException:
    """vim.fault.NoPermission as pyVmomi raises it for an account without
    System.View: the real type when pyVmomi is installed."""
    try:
        from pyVmomi import vim  # type: ignore[import-not-found]
    except ImportError:
        fault = FakeFault("Permission to perform this operation was denied.")
        fault.privilegeId = "System.View"
        return fault
    return vim.fault.NoPermission(msg="Permission to perform this operation was denied.", privilegeId="System.View")


def test_esxi_login_fault_with_xml_escaped_password():
    """The issue's case: a password with & < > comes back XML-escaped in the
    server's SOAP fault."""
    api = FakeVSphere(password=PASSWORD)
    escaped = xml.sax.saxutils.escape(PASSWORD)
    api.fail["login"] = FakeFault(f"<faultstring>Cannot complete login for {USER}:{escaped}</faultstring>")
    with pytest.raises(BackendUnavailable) as err:
        esxi(api).preflight()
    message = str(err.value)
    assert_clean(message, PASSWORD)
    assert "cannot log in" in message and MASK in message and "\n" not in message


def test_esxi_fault_with_every_encoding_after_login(tmp_path):
    api = FakeVSphere(password=PASSWORD, guest_output=[b"x"])
    b = esxi(api)
    b.preflight()
    cookie = api.cookies_seen[-1]
    api.fail["CreateVM"] = f"A specified parameter was not correct: {every_form(PASSWORD)} {every_form(cookie)}"
    with pytest.raises(BootFailed) as err:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    assert_clean(str(err.value), PASSWORD, cookie)
    assert "creating the VM" in str(err.value) and "\n" not in str(err.value)
    assert api.leftovers() == {}


def test_esxi_upload_error_body_is_scrubbed(tmp_path):
    api = FakeVSphere(password=PASSWORD)
    b = esxi(api)
    b.preflight()
    api.fail["upload"] = f"<error>session {json.dumps(PASSWORD)} &#x70;&amp;ss</error>"
    with pytest.raises(BootFailed) as err:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    assert "HTTP 500" in str(err.value)
    assert_clean(str(err.value), PASSWORD)


@pytest.mark.parametrize("where", ["login", "CreateContainerView"])
@pytest.mark.parametrize("error", [
    no_permission(),
    socket.gaierror(-2, "Name or service not known"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
    ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    http.client.IncompleteRead(b"partial"),
    KeyError("a bug in the library"),
    ValueError(f"bad reply echoing {urllib.parse.quote_plus(PASSWORD)}\nsecond line"),
], ids=lambda e: type(e).__name__)  # fmt: skip
def test_esxi_preflight_ends_in_one_scrubbed_line(where, error):
    """Any exception in the pre-flight check, before or after login (an
    account without System.View), is BackendUnavailable with one line."""
    api = FakeVSphere(password=PASSWORD)
    api.fail[where] = error
    with pytest.raises(BackendUnavailable) as err:
        esxi(api).preflight()
    message = str(err.value)
    assert "\n" not in message and "dynamicType" not in message
    assert type(error).__name__ in message
    assert_clean(message, PASSWORD)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    if isinstance(error, FakeFault) or "NoPermission" in type(error).__name__:
        assert "System.View" in message
    assert api.leftovers() == {}  # the session that got in logged out again


@pytest.mark.parametrize("error", [http.client.IncompleteRead(b""), ConnectionResetError(104, "reset"),
                                   http.client.BadStatusLine("\x00garbage"),
                                   OSError(f"proxy said {base64.b64encode(PASSWORD.encode()).decode()}")],
                         ids=lambda e: type(e).__name__)  # fmt: skip
def test_esxi_serial_read_errors_end_the_console_not_the_run(tmp_path, error):
    api = FakeVSphere(password=PASSWORD, guest_output=[b"x"])
    b = esxi(api)
    b.preflight()
    api.fail["GET"] = error
    outcome = run(b, tmp_path)
    shown = json.dumps([[r.detail, r.console] for r in outcome.results])
    assert outcome.results and "lost contact" in shown
    assert type(error).__name__ in shown
    assert_clean(shown, PASSWORD)
    assert api.leftovers() == {}


def test_esxi_question_and_state_faults_are_scrubbed(tmp_path):
    api = FakeVSphere(password=PASSWORD, guest_output=[b"x"])
    b = esxi(api)
    b.preflight()
    api.fail["runtime"] = f"fault &lt;{html.escape(PASSWORD)}&gt;"
    outcome = run(b, tmp_path)
    assert_clean(json.dumps([[r.detail, r.console] for r in outcome.results]), PASSWORD)


def test_esxi_host_strings_in_the_facts_are_scrubbed():
    """A host that names itself after the password (a hostile or misconfigured
    one): the pre-flight facts bound for the run record leak nothing."""
    api = FakeVSphere(password=PASSWORD, nested_supported=False)
    api.hosts[0].name = f"esx1 {html.escape(PASSWORD)}"
    b = esxi(api)
    b.preflight()
    assert_clean(json.dumps(b.describe(), default=str), PASSWORD)
    assert b.facts["esxi.host"] == f"esx1 {MASK}" and MASK in b.problems[0]


# ---- hyperv -----------------------------------------------------------------------------------------

HV_USER = "LAB\\nvct"
HYPERV_ENV = {"NVCT_HYPERV_USER": HV_USER, "NVCT_HYPERV_PASSWORD": PASSWORD}


def hyperv(host: FakeHypervHost, env: dict | None = None, **settings) -> HypervBackend:
    s = HypervSettings(host="hv1.example.test", **{"poll_interval": 0.01, **settings})
    return HypervBackend(s, 0, api=host, environ=HYPERV_ENV if env is None else env)


@pytest.mark.parametrize("error", [
    ConnectionError(f"POST https://hv1:5986/wsman?auth={urllib.parse.quote(PASSWORD)} failed"),
    OSError(f"Authorization: Basic {base64.b64encode(f'{HV_USER}:{PASSWORD}'.encode()).decode()}"),
    RuntimeError(json.dumps({"error": PASSWORD, "escaped": xml.sax.saxutils.escape(PASSWORD)})),
    TimeoutError("timed out"),
], ids=lambda e: type(e).__name__)  # fmt: skip
def test_hyperv_open_errors_are_one_scrubbed_line(error):
    host = FakeHypervHost(password=PASSWORD)
    host.fail["open"] = error
    with pytest.raises(BackendUnavailable) as err:
        hyperv(host).preflight()
    message = str(err.value)
    assert "\n" not in message and "cannot open a PowerShell session" in message
    for secret_user in (USER, HV_USER):
        assert leaks(message, PASSWORD, secret_user) == []


@pytest.mark.parametrize("reply", [{"os_build": "not a number", "cpu_manufacturer": "GenuineIntel"},
                                   {"cpu_manufacturer": "AuthenticAMD", "supported_versions": 5}])  # fmt: skip
def test_hyperv_odd_preflight_reply_is_one_line(reply):
    host = FakeHypervHost(password=PASSWORD)
    host.preflight_reply = reply
    with pytest.raises(BackendUnavailable) as err:
        hyperv(host).preflight()
    assert "the pre-flight check failed" in str(err.value) and "\n" not in str(err.value)
    assert host.leftovers() == {}


def test_hyperv_script_errors_are_scrubbed(tmp_path):
    host = FakeHypervHost(password=PASSWORD, guest_output=pieces())
    b = hyperv(host)
    b.preflight()
    host.fail["create"] = f"New-VM : access denied\r\n+ CategoryInfo : {every_form(PASSWORD)}"
    with pytest.raises(BootFailed) as err:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    assert_clean(str(err.value), PASSWORD)
    assert "\n" not in str(err.value)
    host.fail.clear()
    host.fail["poll"] = OSError(f"WinRM said {html.escape(PASSWORD)}")
    outcome = run(b, tmp_path)
    assert_clean(json.dumps([[r.detail, r.console] for r in outcome.results]), PASSWORD)
    assert host.leftovers() == {}


def pieces() -> list[bytes]:
    data = b"".join(probe_kernel_output(PROBES))
    return [data[i : i + 37] for i in range(0, len(data), 37)]


# ---- password_env: a value that may be the password itself -----------------------------------------------


@pytest.mark.parametrize("backend", ["esxi", "hyperv"])
@pytest.mark.parametrize("key", ["password_env", "user_env"])
@pytest.mark.parametrize("pasted", [PASSWORD, "hunter2 with spaces", "9starts-with-digit"])
def test_pasted_password_in_env_key_is_not_repeated(tmp_path, backend, key, pasted):
    path = tmp_path / "p.yaml"
    path.write_text(f"stack:\n  - backend: {backend}\n    host: h1\n    {key}: {json.dumps(pasted)}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert f"stack[0].{key}" in message and ":4:" in message
    assert "not a valid environment variable name" in message
    assert leaks(message, pasted) == [] and pasted not in message


@pytest.mark.parametrize("make", [
    lambda env, pasted: esxi(FakeVSphere(password=PASSWORD), env, password_env=pasted),
    lambda env, pasted: hyperv(FakeHypervHost(password=PASSWORD), env, password_env=pasted),
], ids=["esxi", "hyperv"])  # fmt: skip
def test_pasted_password_that_looks_like_a_name_is_not_repeated(make):
    """A password that happens to be a valid variable name (Hunter2Secret)
    names no variable that is set: neither the error nor the run record
    repeats it."""
    pasted = "Hunter2Secret"
    env = {"NVCT_ESXI_USER": USER, "NVCT_HYPERV_USER": HV_USER}
    b = make(env, pasted)
    with pytest.raises(BackendUnavailable) as err:
        b.preflight()
    assert "the environment variable that password_env names" in str(err.value)
    assert pasted not in str(err.value)
    assert pasted not in json.dumps(b.describe(), default=str)


def test_a_custom_variable_that_is_set_is_named():
    api = FakeVSphere(password=PASSWORD)
    b = esxi(api, {"NVCT_ESXI_USER": USER, "MY_ESXI_PW": PASSWORD}, password_env="MY_ESXI_PW")
    b.preflight()
    assert b.describe()["settings"]["password_env"] == "MY_ESXI_PW"
    api.fail["login"] = "denied"
    with pytest.raises(BackendUnavailable, match="the environment variable MY_ESXI_PW"):
        esxi(api, {"NVCT_ESXI_USER": USER, "MY_ESXI_PW": PASSWORD}, password_env="MY_ESXI_PW").preflight()


# ---- the CLI end to end, against the fakes -------------------------------------------------------------------


def fake_nvct(tmp_path, backend: str, fake: dict, *, env: dict | None = None, settings: str = ""):
    """`nvct run -p <profile>` in a child process, the library under the
    backend replaced by a fake (tests/fakes/cli.py)."""
    import subprocess

    profile = tmp_path / "p.yaml"
    host = "esx1.example.test" if backend == "esxi" else "hv1.example.test"
    profile.write_text(f"name: fake-{backend}\nstack:\n  - backend: {backend}\n    host: {host}\n"
                       f"    poll_interval: 0.01\n{settings}timeouts:\n  boot: 5\n  probe: 5\n")  # fmt: skip
    record = tmp_path / "run.json"
    base = {"NVCT_ESXI_USER": USER, "NVCT_ESXI_PASSWORD": PASSWORD,
            "NVCT_HYPERV_USER": HV_USER, "NVCT_HYPERV_PASSWORD": PASSWORD}  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NVCT_ESXI", "NVCT_HYPERV"))}
    full_env.update({**base, **(env if env is not None else {}),
                     "NVCT_FAKE_HOST": json.dumps({"backend": backend, "password": PASSWORD, **fake})})  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fakes" / "cli.py"), "run", "-p", str(profile),
         "--probes", "cpu.cpuid.basic", "-o", str(record)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=full_env,
    )  # fmt: skip
    text = record.read_text() if record.exists() else ""
    return proc, text


NO_PERMISSION = {
    "raise": "vim.fault.NoPermission",
    "kwargs": {"msg": "Permission to perform this operation was denied.", "privilegeId": "System.View"},
}


@pytest.mark.parametrize("backend,fake,expect", [
    ("esxi", {"fail": {"login": f"<fault>login as {USER}:{xml.sax.saxutils.escape(PASSWORD)}</fault>"}},
     "cannot log in"),
    ("esxi", {"fail": {"CreateContainerView": NO_PERMISSION}}, "System.View"),
    ("esxi", {"fail": {"login": {"raise": "socket.gaierror", "args": [-2, "Name or service not known"]}}},
     "gaierror"),
    ("esxi", {"fail": {"login": {"raise": "http.client.RemoteDisconnected", "args": ["closed"]}}},
     "RemoteDisconnected"),
    ("hyperv", {"fail": {"open": f"401 for {urllib.parse.quote_plus(PASSWORD)} {json.dumps(PASSWORD)}"}},
     "cannot open a PowerShell session"),
    ("hyperv", {"fail": {"preflight": f"Get-VMHost : denied\r\n{html.escape(PASSWORD)}"}}, "pre-flight"),
    ("hyperv", {"preflight_reply": {"os_build": "x", "cpu_manufacturer": "GenuineIntel"}}, "pre-flight"),
], ids=["esxi-xml-escaped-login", "esxi-no-system-view", "esxi-gaierror", "esxi-http-client",
        "hyperv-url-json", "hyperv-script-error", "hyperv-odd-reply"])  # fmt: skip
def test_cli_preflight_failures_are_one_line_exit_2(tmp_path, backend, fake, expect):
    pytest.importorskip("pyVmomi") if "vim." in json.dumps(fake) else None
    proc, record = fake_nvct(tmp_path, backend, fake)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvct: error:"), proc.stderr
    assert expect in lines[0]
    for text in (proc.stdout, proc.stderr, record):
        assert_clean(text, PASSWORD)
        assert leaks(text, PASSWORD, HV_USER) == []


@pytest.mark.parametrize("backend,pasted", [("esxi", PASSWORD), ("esxi", "Hunter2Secret"),
                                            ("hyperv", PASSWORD), ("hyperv", "Hunter2Secret")])  # fmt: skip
def test_cli_pasted_password_env_exit_2(tmp_path, backend, pasted):
    proc, record = fake_nvct(tmp_path, backend, {}, settings=f"    password_env: {json.dumps(pasted)}\n")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvct: error:"), proc.stderr
    assert "password_env" in lines[0]
    for text in (proc.stdout, proc.stderr, record):
        assert "Traceback" not in text and leaks(text, pasted) == []


@pytest.mark.parametrize("backend,fake", [
    ("esxi", {"guest": True, "fail": {"CreateVM": "not correct: " + every_form(PASSWORD)}}),
    ("esxi", {"guest": True, "fail": {"GET": {"raise": "http.client.IncompleteRead", "args": [""]}}}),
    ("hyperv", {"guest": True, "fail": {"create": "New-VM : " + every_form(PASSWORD)}}),
], ids=["esxi-fault-after-login", "esxi-serial-read-error", "hyperv-script-error"])  # fmt: skip
def test_cli_boot_failures_are_scrubbed_in_every_output(tmp_path, backend, fake):
    """A failure after the pre-flight check: the run goes on, its record
    and report say what failed, scrubbed, and no traceback."""
    proc, record = fake_nvct(tmp_path, backend, fake)
    assert proc.returncode == 1, proc.stderr  # the gate fails: the level did not come up
    assert record and json.loads(record)["results"]
    for text in (proc.stdout, proc.stderr, record):
        assert_clean(text, PASSWORD)
        assert leaks(text, PASSWORD, HV_USER) == []
    assert "CRASH" in proc.stdout
