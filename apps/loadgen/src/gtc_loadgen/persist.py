"""The presenter's settings, kept across a restart of the app.

Every accepted change (``/api/settings``, a preset) is written to a small JSON
document; at start the app reads it back over its initial settings. The
document also records the initial settings it was made from (``--settings``,
that is the inventory's ``loadgen_settings``): when those changed, the
deployment asked for something new and the kept settings are dropped.

A document that cannot be used (not JSON, another format, a routing that is no
longer configured, a value out of range) is reported in the log and ignored;
it never stops the app from starting.

``FileStore`` writes a file atomically (a temporary file in the same folder,
flushed, then renamed over the old one), so a crash mid-write leaves the old
document or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .settings import Settings, SettingsError

log = logging.getLogger(__name__)

FORMAT = "gtc-loadgen-settings/1"


class Store(Protocol):
    def load(self) -> str | None:
        """The stored document's text, or None when there is none."""

    def save(self, text: str) -> None:
        """Replace the stored document."""

    def describe(self) -> str:
        """Where it is, for the log."""


class FileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def load(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def document(settings: Settings, initial: dict[str, Any]) -> str:
    return json.dumps({"format": FORMAT, "initial": initial, "settings": settings.to_dict()},
                      indent=1, sort_keys=True) + "\n"


def restore(text: str | None, base: Settings, initial: dict[str, Any], routings: Sequence[str],
            where: str) -> Settings:
    """``base`` with the kept settings of ``text`` applied, or ``base`` (and a log line why) when unusable."""
    if text is None:
        return base
    try:
        doc = json.loads(text)
    except ValueError as exc:
        log.warning("kept settings in %s ignored: not JSON (%s)", where, exc)
        return base
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("settings"), dict):
        log.warning("kept settings in %s ignored: not a %s document", where, FORMAT)
        return base
    if doc.get("initial") != initial:
        log.info("kept settings in %s ignored: the initial settings changed since they were written", where)
        return base
    try:
        restored = base.patched(doc["settings"], routings=routings)
    except SettingsError as exc:
        log.warning("kept settings in %s ignored: %s", where, exc)
        return base
    log.info("settings restored from %s", where)
    return restored


class Keeper:
    """Writes the settings after each change; a failed write is logged, the change stands."""

    def __init__(self, store: Store, initial: dict[str, Any]) -> None:
        self.store, self.initial = store, initial
        self.last_error: str | None = None
        self._last: str | None = None

    def load(self, base: Settings, routings: Sequence[str]) -> Settings:
        try:
            text = self.store.load()
        except (OSError, ValueError) as exc:
            log.warning("kept settings in %s cannot be read: %s", self.store.describe(), exc)
            return base
        out = restore(text, base, self.initial, routings, self.store.describe())
        self._last = document(out, self.initial) if out is not base else None
        return out

    def save(self, settings: Settings) -> None:
        text = document(settings, self.initial)
        if text == self._last:
            return
        try:
            self.store.save(text)
        except Exception as exc:  # noqa: BLE001 - keeping settings must never break a control
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("settings not kept in %s: %s", self.store.describe(), self.last_error)
            return
        self._last, self.last_error = text, None
