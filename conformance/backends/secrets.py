"""Credentials for remote hosts, and keeping secrets out of messages.

A remote backend (ESXi, Hyper-V) takes its user and password from the
environment or a keyring, never from a profile; whatever it says (errors,
excerpts, run-record facts) goes through `scrub()` first.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from typing import Any

ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class Secret:
    """A password or session token: never shown by str() or repr()."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    user: str
    password: Secret
    source: str  # where the password came from: "the environment variable X", "keyring service Y"


class CredentialsMissing(Exception):
    pass


def env_name_problem(key: str, example: str) -> str:
    """What to say of a `*_env` value that is no environment variable name.
    The value is not repeated: it may be the password itself, pasted there."""
    return (f"not a valid environment variable name (the value is not shown, in case it is the password); "
            f"give the NAME of an environment variable (like {example}), never the value itself")  # fmt: skip


def env_label(key: str, name: str, default: str, environ: Any = None) -> str:
    """How a message names the variable a `*_env` key gives: by its name
    when that is the default or is set in the environment (then it is a
    variable's name for certain), else as "the variable that `key` names",
    so that a password pasted as the value of password_env is never
    repeated."""
    import os

    env = os.environ if environ is None else environ
    if name == default or env.get(name):
        return f"the environment variable {name}"
    return f"the environment variable that {key} names"


def resolve_credentials(
    user_env: str,
    password_env: str,
    keyring_service: str,
    environ: dict[str, str] | None = None,
    default_password_env: str = "",
) -> Credentials:
    """The user from the environment variable `user_env`; the password from
    `password_env`, or else from the keyring service `keyring_service` (the
    `keyring` package) under that user. Never from a profile.
    `default_password_env`: the backend's default for password_env, which
    messages repeat even when it is not set (env_label)."""
    import os

    env = os.environ if environ is None else environ
    user_var = f"the environment variable {user_env}"  # a user name is no secret
    password_var = env_label("password_env", password_env, default_password_env, env)
    user = env.get(user_env, "")
    if not user:
        raise CredentialsMissing(f"set {user_var} to the user name")
    password = env.get(password_env, "")
    if password:
        return Credentials(user, Secret(password), password_var)
    if keyring_service:
        try:
            import keyring  # type: ignore[import-not-found]
        except ImportError:
            raise CredentialsMissing(
                f"{password_var} is not set and keyring_service {keyring_service!r} needs the keyring package "
                "(pip install nvct[keyring])"
            ) from None
        try:
            stored = keyring.get_password(keyring_service, user)
        except Exception as exc:  # a keyring backend's own failure (locked, absent)
            raise CredentialsMissing(f"keyring service {keyring_service!r}: {type(exc).__name__}") from None
        if stored:
            return Credentials(user, Secret(stored), f"keyring service {keyring_service}")
        raise CredentialsMissing(f"{password_var} is not set and the keyring service {keyring_service!r} "
                                 f"holds no password for {user}")  # fmt: skip
    raise CredentialsMissing(f"set {password_var} to the password (or name a keyring_service in the profile)")


# What stands for a secret in a message. A secret reaches a message raw, or
# in the form some layer put it in on its way: XML-escaped in a SOAP fault
# (&amp; &lt; &gt; &quot; &apos; or a numeric character reference),
# URL-encoded in a path or query (quote, quote_plus), JSON- or
# Python-escaped in a repr or a JSON error body, base64 in an HTTP Basic
# Authorization header (of "user:secret") or in a blob. scrub() replaces
# each of those forms, and mixtures of them, with MASK.
MASK = "***"
_XML_NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
_JSON_SHORT = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}


def _hex(number: int, width: int = 0) -> str:
    """A regex for `number` in hex, either case, at least `width` digits."""
    return f"(?i:0*{number:0{width}x})" if width == 0 else f"(?i:{number:0{width}x})"


def _char_forms(c: str) -> str:
    """A regex for one character of a secret in any of its escaped forms."""
    code = ord(c)
    forms = []
    # XML/HTML: a named entity, a decimal or hex reference (also once more escaped: &amp;lt;).
    amp = "&(?:amp;)?"
    if c in _XML_NAMED:
        forms.append(f"{amp}{_XML_NAMED[c]};")
    forms.append(f"{amp}#0*{code};")
    forms.append(f"{amp}#[xX]{_hex(code)};")
    # URL: percent-encoded UTF-8 bytes; a space as + (quote_plus).
    forms.append("".join(f"%{_hex(byte, 2)}" for byte in c.encode("utf-8", "surrogatepass")))
    if c == " ":
        forms.append(r"\+")
    # JSON and Python string escapes.
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(rf"\\u{_hex(high, 4)}\\u{_hex(low, 4)}")
        forms.append(rf"\\U{_hex(code, 8)}")
    else:
        forms.append(rf"\\u{_hex(code, 4)}")
        if code < 0x100:
            forms.append(rf"\\x{_hex(code, 2)}")
    if c in _JSON_SHORT:
        forms.append(rf"\\{_JSON_SHORT[c]}")
    if not c.isalnum():
        forms.append(rf"\\{re.escape(c)}")  # \" \\ \/ \'
    forms.append(re.escape(c))  # last: an escaped form that starts with the character itself wins
    return "(?:" + "|".join(forms) + ")"


def _base64_forms(data: bytes) -> set[str]:
    """`data` in base64 (standard and URL-safe, with and without padding),
    whole and as the part of a longer base64 text that it fixes whatever
    bytes come before it (at each of the three alignments)."""
    found = set()
    whole = base64.b64encode(data).decode()
    found |= {whole, whole.rstrip("=")}
    for shift in (1, 2):
        encoded = base64.b64encode(bytes(shift) + data).decode()
        start = -(-8 * shift // 6)  # the first character made only of bits of `data`
        end = 8 * (shift + len(data)) // 6
        found.add(encoded[start:end])
    found.add(whole[: 8 * len(data) // 6])
    found = {f for f in found if f == whole or len(f) >= 8}  # short fragments would mask ordinary words
    return found | {f.replace("+", "-").replace("/", "_") for f in found}


@functools.lru_cache(maxsize=64)
def _pattern(value: str, users: tuple[str, ...]) -> re.Pattern[str]:
    raw = value.encode("utf-8", "surrogatepass")
    literals = _base64_forms(raw)
    for user in users:
        whole = base64.b64encode(f"{user}:".encode("utf-8", "surrogatepass") + raw).decode()
        literals |= {whole, whole.rstrip("=")}
    alternatives = sorted(literals, key=len, reverse=True)  # the longest form first
    chars = "".join(_char_forms(c) for c in value)
    return re.compile("|".join([*(re.escape(a) for a in alternatives), chars]))


def scrub(text: str, secrets: list[Secret | str | None], users: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with every secret replaced by MASK: raw, escaped or encoded
    (see above). `users` are the user names the secrets go with, for the
    base64 of "user:secret" (HTTP Basic authentication)."""
    named = tuple(u for u in users if u)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = _pattern(value, named).sub(MASK, text)
    return text


def flatten(text: str) -> str:
    """A message as one line of plain text: line breaks and runs of blanks
    become one space, other control characters a visible \\xNN."""
    text = re.sub(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*", " ", text)
    text = re.sub(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.replace("\t", " ").strip()
