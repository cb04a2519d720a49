"""Every console a backend yields is a `Console` (backends/transports): real
instances of each class pass the runtime check, and each method takes the
Protocol's parameters with the Protocol's defaults."""

from __future__ import annotations

import inspect

import pexpect
import pytest

from conformance.backends.transports import Console
from conformance.backends.transports.polled import PolledChunk, PolledConsole
from conformance.backends.transports.pty import PtyConsole
from conformance.backends.transports.shell import GuestConsole
from conformance.backends.xen import DomainConsole

METHODS = [name for name, value in vars(Console).items() if callable(value) and not name.startswith("_")]


@pytest.fixture
def consoles():
    pty = PtyConsole(pexpect.spawn("sh", ["-c", "echo hello"], echo=False), label="sh")
    polled = PolledConsole(lambda offset: PolledChunk(b"hello\n" if offset == 0 else b"", ended=offset > 0), "fake")
    guest = GuestConsole(pty, "NVCT-EXIT-1", "guest")
    domain = DomainConsole(guest, domid=1)
    yield {"pty": pty, "polled": polled, "guest": guest, "domain": domain}
    pty.close(grace=1.0)


def test_the_protocol_is_what_the_runner_and_the_shell_call():
    assert METHODS == ["readline", "send", "tail", "close", "kill", "describe_end"]
    assert "facts" in Console.__annotations__


@pytest.mark.parametrize("kind", ["pty", "polled", "guest", "domain"])
def test_each_console_is_a_console(consoles, kind):
    console = consoles[kind]
    assert isinstance(console, Console)
    for name in METHODS:
        want = inspect.signature(getattr(Console, name))
        got = inspect.signature(getattr(type(console), name))
        assert [(p.name, p.default) for p in got.parameters.values()] == [
            (p.name, p.default) for p in want.parameters.values()
        ], f"{type(console).__name__}.{name}{got} is not Console.{name}{want}"
    assert isinstance(console.facts, dict)


@pytest.mark.parametrize("kind", ["pty", "polled", "domain"])
def test_each_console_reads_lines_and_says_how_it_ended(consoles, kind):
    console = consoles[kind]
    assert console.readline(10.0) == "hello"
    assert console.readline(10.0) is None
    assert isinstance(console.describe_end(), str)
    assert "hello" in console.tail()


def test_a_plain_object_is_not_a_console():
    assert not isinstance(object(), Console)
