"""Who is calling: API keys with names and roles, behind one ``Authenticator`` seam.

Keys come from ``SARA_AGENT_API_KEYS`` (comma-separated) and/or ``--api-keys-file``, which holds
either one key per line (``#`` comments; every key has every role) or YAML::

    - name: dr-okafor            # recorded on the tasks she starts and the orders she signs
      roles: [run, approve, read]
      key_sha256: 9f86d0…        # or  key: <the key itself>
    - name: ward-4b-kiosk
      roles: [run]
      key: …

Roles: ``run`` starts tasks and sees and cancels its own; ``read`` sees every task;
``approve`` signs or declines pending writes (and sees and cancels any task). Keys are compared
as SHA-256 digests in constant time over all keys, so ``key_sha256`` (hashed at rest) and plain
keys are checked alike. An OIDC bearer-token authenticator would implement the same
``authenticate`` method and return the same :class:`Principal`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from sara.agent.errors import ConfigError

ROLES = frozenset({"run", "approve", "read"})
ALL_ROLES = ROLES
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,127}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a name for records, the roles it holds."""

    name: str
    roles: frozenset[str]

    def can(self, role: str) -> bool:
        return role in self.roles


ANONYMOUS = Principal("anonymous", ALL_ROLES)


@dataclass(frozen=True)
class KeyEntry:
    name: str
    roles: frozenset[str]
    digest: bytes  # SHA-256 of the key


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None) -> Principal | None: ...


def key_id(key: str) -> str:
    """A stable, non-secret identity for an unnamed key: ``key:`` + 12 hex chars of SHA-256."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _plain(key: str) -> KeyEntry:
    return KeyEntry(key_id(key), ALL_ROLES, hashlib.sha256(key.encode()).digest())


def load_keys(inline: str, path: Path | None) -> tuple[KeyEntry, ...]:
    """Entries from a comma-separated string and/or a key file (plain lines or YAML)."""
    entries = [_plain(k.strip()) for k in inline.split(",") if k.strip()]
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read API keys file {path}: {exc.strerror}") from exc
        entries += _parse_file(text, path)
    seen: dict[bytes, KeyEntry] = {}
    names: set[str] = set()
    for entry in entries:
        if entry.digest in seen:
            continue
        if entry.name in names:
            raise ConfigError(f"API keys file {path}: the name {entry.name!r} is used twice")
        seen[entry.digest] = entry
        names.add(entry.name)
    return tuple(seen.values())


def _parse_file(text: str, path: Path) -> list[KeyEntry]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return [_entry(item, path, i) for i, item in enumerate(data, start=1)]
    if isinstance(data, list) and any(isinstance(d, dict) for d in data):
        raise ConfigError(f"API keys file {path}: every YAML item must be a mapping")
    lines = (ln.strip() for ln in text.splitlines())
    return [_plain(ln) for ln in lines if ln and not ln.startswith("#")]


def _entry(item: dict[str, Any], path: Path, index: int) -> KeyEntry:
    where = f"API keys file {path}, item {index}"
    unknown = set(item) - {"name", "roles", "key", "key_sha256"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: 'name' must be 1-128 letters, digits, ' ._@:-'")
    roles = item.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise ConfigError(f"{where}: 'roles' must be a non-empty list of {sorted(ROLES)}")
    if set(roles) - ROLES:
        raise ConfigError(f"{where}: unknown role(s) {sorted(set(roles) - ROLES)}")
    key, digest = item.get("key"), item.get("key_sha256")
    if (key is None) == (digest is None):
        raise ConfigError(f"{where}: give exactly one of 'key' or 'key_sha256'")
    if key is not None:
        if not isinstance(key, str) or len(key.strip()) < 16:
            raise ConfigError(f"{where}: 'key' must be a string of at least 16 characters")
        raw = hashlib.sha256(key.strip().encode()).digest()
    else:
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ConfigError(f"{where}: 'key_sha256' must be 64 hex characters")
        raw = bytes.fromhex(digest)
    return KeyEntry(name, frozenset(roles), raw)


class KeyRing:
    """The accepted keys; ``authenticate`` returns the caller or None."""

    def __init__(self, entries: tuple[KeyEntry, ...]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = hashlib.sha256(token.strip().encode()).digest()
        found: KeyEntry | None = None
        for entry in self._entries:  # no early exit: time does not depend on which matched
            if hmac.compare_digest(given, entry.digest):
                found = entry
        return Principal(found.name, found.roles) if found is not None else None
