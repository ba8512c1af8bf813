"""sandq's Lua scripts: one file per state transition, ``<name>-<numkeys>.lua``.

The key count is read from the file name, never from a hand-kept table. A line ``--#include <name>``
is replaced by ``includes/<name>.lua`` (recursively; each include is inlined once per script), so shared
helpers live in one place. Loading is file reading only: running a script is the connection layer's job.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)-(?P<numkeys>\d+)\.lua$")
_INCLUDE = re.compile(r"^--#include\s+(?P<name>[a-z][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Script:
    """A loaded script: its name, key count, full source (includes inlined) and SHA1."""

    name: str
    numkeys: int
    source: str
    sha: str

    def __repr__(self) -> str:
        return f"<Script {self.name}-{self.numkeys} {self.sha[:8]}>"


def _read(*parts: str) -> str:
    return resources.files(__name__).joinpath(*parts).read_text(encoding="utf-8")


def _expand(text: str, seen: set[str], chain: tuple[str, ...]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name in chain:
            raise ValueError(f"Lua include cycle: {' -> '.join((*chain, name))}")
        if name in seen:
            return f"-- ({name} already included)"
        seen.add(name)
        body = _read("includes", f"{name}.lua")
        return _expand(body, seen, (*chain, name)).rstrip("\n")

    return _INCLUDE.sub(replace, text)


def expand_includes(text: str) -> str:
    """``text`` with every ``--#include`` replaced by the include's source."""
    return _expand(text, set(), ())


@functools.cache
def all_scripts() -> dict[str, Script]:
    """Every script shipped in this package, by name."""
    scripts: dict[str, Script] = {}
    for entry in resources.files(__name__).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        source = expand_includes(entry.read_text(encoding="utf-8"))
        name = match.group("name")
        if name in scripts:
            raise ValueError(f"two Lua files define the script {name!r}")
        sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        scripts[name] = Script(name=name, numkeys=int(match.group("numkeys")), source=source, sha=sha)
    return scripts


def get_script(name: str) -> Script:
    """The script called ``name`` (the file name without ``-<numkeys>.lua``)."""
    try:
        return all_scripts()[name]
    except KeyError:
        raise KeyError(f"no Lua script named {name!r}") from None
