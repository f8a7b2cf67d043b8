"""The types of settings (config/table.py): one parser per type, each with its bounds.

A parser takes a raw value, a string from the environment or whatever YAML made of a
config.yaml value, and returns the typed value or raises BadValue with the problem in a few
words ("expected an integer 1..65535"); config/table.py puts the variable or key and the value
in front, so every bad setting is one line naming where it came from. `text` is how
docs/configuration.md's table names the type.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_TEXT_CHARS = 4096
"""Every string setting has a bound; this is the loosest."""


class BadValue(ValueError):
    """A value that its setting's type refuses; the message is the problem, without the value."""


@dataclass(frozen=True)
class Kind:
    """A setting's type: `parse` checks and converts, `text` describes it."""

    text: str
    secret: bool = False
    """Errors never repeat the value (keys, tokens, webhook URLs)."""

    def parse(self, raw: object) -> Any:
        raise NotImplementedError


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Int(Kind):
    """An integer within [lo, hi] (a YAML integer, or its digits in a string)."""

    lo: int = 0
    hi: int = 0

    def parse(self, raw: object) -> int:
        value: object = raw
        if isinstance(raw, str):
            try:
                value = int(raw.strip())
            except ValueError:
                raise BadValue(f"expected an integer {self.lo:,}..{self.hi:,}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(f"expected an integer {self.lo:,}..{self.hi:,}, got {type(raw).__name__}")
        if not self.lo <= value <= self.hi:
            raise BadValue(f"must be {self.lo:,}..{self.hi:,}")
        return value


@dataclass(frozen=True)
class Number(Kind):
    """A finite number within its bounds (seconds, a rate); lo is excluded when `above` is set."""

    lo: float = 0.0
    hi: float = 0.0
    above: bool = False
    """True: the number must be more than lo (lo itself is not allowed)."""

    def _range(self) -> str:
        low = f"more than {_number_text(self.lo)}" if self.above else f"at least {_number_text(self.lo)}"
        return f"{low} and at most {_number_text(self.hi)}"

    def parse(self, raw: object) -> float:
        value: object = raw
        if isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                raise BadValue(f"expected a number, {self._range()}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadValue(f"expected a number, {self._range()}")
        if value < self.lo or value > self.hi or (self.above and value == self.lo):
            raise BadValue(f"must be {self._range()}")
        return float(value)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadValue(f"expected {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}")


@dataclass(frozen=True)
class Bool(Kind):
    def parse(self, raw: object) -> bool:
        return parse_bool(raw)


TLS_KEYS = ("server_root_ca_cert", "client_cert", "client_private_key", "domain")


@dataclass(frozen=True)
class Tls(Kind):
    """A bool (system roots), or in config.yaml a mapping of TLS_KEYS to strings (mTLS)."""

    def parse(self, raw: object) -> bool | dict[str, str]:
        if not isinstance(raw, dict):
            return parse_bool(raw)
        unknown = sorted(str(k) for k in raw if k not in TLS_KEYS)
        if unknown:
            raise BadValue(f"unknown key {unknown[0]!r} (known: {', '.join(TLS_KEYS)})")
        for key, value in raw.items():
            if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_CHARS):
                raise BadValue(f"{key}: expected a string of at most {MAX_TEXT_CHARS} characters")
        return {k: v for k, v in raw.items() if v is not None}


@dataclass(frozen=True)
class Text(Kind):
    """A string of min_chars..max_chars (surrounding spaces dropped), matching `pattern` if given."""

    min_chars: int = 1
    max_chars: int = MAX_TEXT_CHARS
    pattern: str | None = None
    pattern_means: str = ""
    """What a match looks like, for the error ("a service account's email (...)")."""

    def parse(self, raw: object) -> str:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise BadValue(f"expected a string, got {type(raw).__name__}")
        text = str(raw).strip()
        if len(text) < self.min_chars:
            raise BadValue(f"must have at least {self.min_chars} characters")
        if len(text) > self.max_chars:
            raise BadValue(f"must have at most {self.max_chars} characters, not {len(text)}")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise BadValue("cannot contain control characters")
        if self.pattern is not None and not re.match(self.pattern, text):
            raise BadValue(f"not {self.pattern_means}")
        return text


@dataclass(frozen=True)
class Choice(Kind):
    """One of `choices` (any case; the value returned is spelled as in `choices`)."""

    choices: tuple[str, ...] = ()

    def parse(self, raw: object) -> str:
        word = raw.strip().lower() if isinstance(raw, str) else None
        for choice in self.choices:
            if word == choice.lower():
                return choice
        raise BadValue(f"expected one of {', '.join(self.choices)}")


@dataclass(frozen=True)
class FilePath(Kind):
    """A filesystem path (`~` expanded), at most 4096 characters."""

    def parse(self, raw: object) -> Path:
        text = Text(self.text, max_chars=MAX_TEXT_CHARS).parse(raw)
        return Path(text).expanduser()


@dataclass(frozen=True)
class Url(Kind):
    """An http(s) URL with a host, at most 2048 characters."""

    def parse(self, raw: object) -> str:
        url = Text(self.text, max_chars=2048).parse(raw)
        if any(c.isspace() for c in url):
            raise BadValue("a URL cannot contain spaces")
        try:
            parts = urlsplit(url)
            _ = parts.port  # a bad port raises here
        except ValueError:
            raise BadValue("not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise BadValue("expected an http:// or https:// URL with a host")
        return url


BUCKET_SCHEMES = ("s3", "gs", "gcs", "local")
_BUCKET_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/\s]+)(/\S*)?$")


@dataclass(frozen=True)
class BucketUrl(Kind):
    """`s3://bucket/prefix`, `gs://bucket/prefix` or `local://bucket/prefix` (storage/registry.py)."""

    def parse(self, raw: object) -> str:
        url = Text(self.text, max_chars=2048).parse(raw)
        m = _BUCKET_URL.match(url)
        if not m or m.group(1).lower() not in BUCKET_SCHEMES:
            raise BadValue("expected a bucket URL: s3://bucket/prefix, gs://bucket/prefix or local://bucket/prefix")
        return url


@dataclass(frozen=True)
class Address(Kind):
    """host:port of a server (a bracketed IPv6 host allowed)."""

    def parse(self, raw: object) -> str:
        address = Text(self.text, max_chars=1024).parse(raw)
        host, sep, port = address.rpartition(":")
        if not sep or not host or any(c.isspace() or c == "/" for c in host):
            raise BadValue("expected host:port")
        if not port.isdigit() or not 1 <= int(port) <= 65_535:
            raise BadValue("expected host:port with a port 1..65535")
        return address


@dataclass(frozen=True)
class Names(Kind):
    """A list of names: comma-separated in a variable, a YAML list (or that string) in
    config.yaml; empty items are dropped; each a Text of `item`'s bounds."""

    item: Text = Text("name", max_chars=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      pattern_means="a name (letters, digits, '.', '_', '-')")
    max_items: int = 100

    def parse(self, raw: object) -> list[str]:
        if isinstance(raw, str):
            items: list[object] = [part for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list):
            items = list(raw)
        else:
            raise BadValue(f"expected a comma-separated list or a YAML list, got {type(raw).__name__}")
        if len(items) > self.max_items:
            raise BadValue(f"{len(items)} items is more than the limit of {self.max_items}")
        names = []
        for item in items:
            try:
                names.append(self.item.parse(item))
            except BadValue as exc:
                raise BadValue(f"item {str(item)[:40]!r}: {exc}") from None
        return names


@dataclass(frozen=True)
class Checked(Kind):
    """A setting parsed by its own module (config/notify.py for `notify:`); listed here so it is
    documented with the rest."""

    by: str = ""

    def parse(self, raw: object) -> object:
        return raw  # `by` checks it
