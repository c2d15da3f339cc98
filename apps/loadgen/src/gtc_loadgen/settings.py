"""The presenter's controls, their limits and the presets.

Every change from the page goes through ``Settings.patched``: a value out of
range is refused with a message naming the control, and nothing changes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting the load generator cannot use; the message names it."""


@dataclass(frozen=True)
class Preset:
    concurrency: int
    rate: float  # requests per second across all conversations; 0 = no cap
    think_min_s: float
    think_max_s: float


# Load levels for the booth. Issue 9's measurements pick the values that make
# the KV-aware effect visible; a deployment overrides them with a JSON file
# (--presets / LOADGEN_PRESETS) without a rebuild.
DEFAULT_PRESETS: dict[str, Preset] = {
    "idle": Preset(concurrency=2, rate=0.5, think_min_s=4.0, think_max_s=12.0),
    "booth": Preset(concurrency=16, rate=4.0, think_min_s=4.0, think_max_s=12.0),
    "busy": Preset(concurrency=48, rate=12.0, think_min_s=2.0, think_max_s=8.0),
    "stress": Preset(concurrency=128, rate=0.0, think_min_s=0.5, think_max_s=2.0),
}
PRESET_ORDER = ("idle", "booth", "busy", "stress")

# (min, max) of each numeric control.
LIMITS: dict[str, tuple[float, float]] = {
    "concurrency": (0, 512),
    "rate": (0, 500),
    "turns_min": (1, 10),
    "turns_max": (1, 10),
    "think_min_s": (0, 120),
    "think_max_s": (0, 120),
    "max_tokens": (1, 2048),
    "context_docs": (1, 4),
    "auto_ramp_s": (2, 3600),
    "auto_steady_s": (2, 3600),
    "auto_high_s": (2, 3600),
    "auto_cooldown_s": (2, 3600),
}
INT_FIELDS = {"concurrency", "turns_min", "turns_max", "max_tokens", "context_docs"}


@dataclass(frozen=True)
class Settings:
    running: bool = False
    concurrency: int = 16
    rate: float = 4.0
    # A frontend's id (the targets' ids); "" until the engine settles it on the first one.
    routing: str = ""
    # A/B: new conversations take the frontends in turn (KV-aware, round-robin, ...), so every
    # routing is live side by side; off, they all take ``routing``. Auto mode always alternates.
    ab: bool = False
    turns_min: int = 3
    turns_max: int = 5
    think_min_s: float = 4.0
    think_max_s: float = 12.0
    max_tokens: int = 96
    # Corpus documents per conversation context: 2 gives about 3,000 tokens.
    context_docs: int = 2
    auto: bool = False
    auto_ramp_s: float = 60.0
    auto_steady_s: float = 180.0
    auto_high_s: float = 120.0
    auto_cooldown_s: float = 60.0
    preset: str = "booth"  # the last preset applied, or "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def patched(self, patch: dict[str, Any], *, routings: Sequence[str] | None = None) -> Settings:
        """A copy with ``patch`` applied, or SettingsError naming the first bad field.

        ``routings``: the configured frontends' ids, the values ``routing`` may take
        (None: any id-shaped text, for settings read before the targets are known).
        """
        if not isinstance(patch, dict):
            raise SettingsError("settings must be a JSON object")
        known = {f.name for f in dataclasses.fields(self)}
        values = self.to_dict()
        for key, raw in patch.items():
            if key not in known:
                raise SettingsError(f"unknown setting '{key}'")
            values[key] = _routing(raw, routings) if key == "routing" else _coerce(key, raw)
        if values["turns_min"] > values["turns_max"]:
            raise SettingsError(
                f"turns_min ({values['turns_min']}) must not exceed turns_max ({values['turns_max']})"
            )
        if values["think_min_s"] > values["think_max_s"]:
            raise SettingsError(
                f"think_min_s ({values['think_min_s']}) must not exceed think_max_s ({values['think_max_s']})"
            )
        # A manual change of a load control leaves preset mode.
        if "preset" not in patch and {"concurrency", "rate", "think_min_s", "think_max_s"} & patch.keys():
            values["preset"] = "custom"
        return Settings(**values)

    def for_routings(self, routings: Sequence[str]) -> Settings:
        """These settings for the configured frontends: an unset routing becomes the first id."""
        if not routings:
            raise SettingsError("no frontend is configured")
        if not self.routing:
            return dataclasses.replace(self, routing=routings[0])
        return dataclasses.replace(self, routing=_routing(self.routing, routings))

    def with_preset(self, name: str, presets: dict[str, Preset]) -> Settings:
        if name not in presets:
            raise SettingsError(f"unknown preset '{name}' (known: {', '.join(presets)})")
        p = presets[name]
        return dataclasses.replace(
            self, concurrency=p.concurrency, rate=p.rate, think_min_s=p.think_min_s,
            think_max_s=p.think_max_s, preset=name, auto=False,
        )


def _coerce(key: str, raw: Any) -> Any:
    if key in ("running", "auto", "ab"):
        if not isinstance(raw, bool):
            raise SettingsError(f"{key} must be true or false, got {raw!r}")
        return raw
    if key == "preset":
        if not isinstance(raw, str):
            raise SettingsError(f"preset must be a string, got {raw!r}")
        return raw
    lo, hi = LIMITS[key]
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise SettingsError(f"{key} must be a number between {lo:g} and {hi:g}, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number between {lo:g} and {hi:g}, got {raw!r}") from None
    if math.isnan(value) or not lo <= value <= hi:
        raise SettingsError(f"{key} must be between {lo:g} and {hi:g}, got {raw!r}")
    if key in INT_FIELDS:
        if value != int(value):
            raise SettingsError(f"{key} must be a whole number, got {raw!r}")
        return int(value)
    return value


def _routing(raw: Any, routings: Sequence[str] | None) -> str:
    if routings is None:
        if not isinstance(raw, str):
            raise SettingsError(f"routing must be a frontend's id, got {raw!r}")
        return raw
    if raw not in routings:
        raise SettingsError(f"routing must be one of {', '.join(routings)}, got {raw!r}")
    return raw


def read_json_object(value: str | Path, name: str, not_object: str = "must be a JSON object") -> dict:
    """A JSON object given inline (text starting with ``{``) or as the path of a file that holds it.

    Errors name ``name`` (the option) for inline text, else the file.
    """
    text = str(value)
    inline = text.lstrip().startswith("{")
    source = name if inline else text
    if not inline:
        text = Path(text).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: {not_object}")
    return data


def load_presets(path: str | Path | None) -> dict[str, Preset]:
    """The default presets, overridden by JSON {name: {concurrency, rate, think_min_s, think_max_s}}.

    ``path`` is a file holding that object, or the object itself as text (starting with ``{``).
    """
    presets = dict(DEFAULT_PRESETS)
    if not path:
        return presets
    data = read_json_object(path, "--presets", "presets must be a JSON object of name -> preset")
    path = "--presets" if str(path).lstrip().startswith("{") else path  # what the errors below name
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise SettingsError(f"{path}: preset '{name}' must be an object")
        base = presets.get(name, DEFAULT_PRESETS["booth"])
        merged = {**dataclasses.asdict(base), **spec}
        unknown = set(merged) - {f.name for f in dataclasses.fields(Preset)}
        if unknown:
            raise SettingsError(f"{path}: preset '{name}' has unknown keys {sorted(unknown)}")
        for key in ("concurrency", "rate", "think_min_s", "think_max_s"):
            merged[key] = _coerce(key, merged[key])
        if merged["think_min_s"] > merged["think_max_s"]:
            raise SettingsError(f"{path}: preset '{name}': think_min_s exceeds think_max_s")
        presets[name] = Preset(**merged)
    return presets


@dataclass(frozen=True)
class AutoPhase:
    name: str
    concurrency: int
    rate: float


@dataclass
class AutoSchedule:
    """ramp-up -> steady -> high -> cooldown, then again; a pure function of elapsed time.

    Ramp-up climbs from the idle preset to the booth preset, steady holds the
    booth preset, high holds the busy preset, cooldown falls from busy back to
    idle. Concurrency and rate move in whole steps so the page shows a staircase
    rather than jitter.
    """

    ramp_s: float
    steady_s: float
    high_s: float
    cooldown_s: float
    presets: dict[str, Preset] = field(default_factory=lambda: dict(DEFAULT_PRESETS))

    @classmethod
    def from_settings(cls, s: Settings, presets: dict[str, Preset]) -> AutoSchedule:
        return cls(s.auto_ramp_s, s.auto_steady_s, s.auto_high_s, s.auto_cooldown_s, presets)

    @property
    def cycle_s(self) -> float:
        return self.ramp_s + self.steady_s + self.high_s + self.cooldown_s

    def at(self, elapsed_s: float) -> AutoPhase:
        low, mid, high = self.presets["idle"], self.presets["booth"], self.presets["busy"]
        t = elapsed_s % self.cycle_s
        if t < self.ramp_s:
            return _between("ramp-up", low, mid, t / self.ramp_s)
        t -= self.ramp_s
        if t < self.steady_s:
            return AutoPhase("steady", mid.concurrency, mid.rate)
        t -= self.steady_s
        if t < self.high_s:
            return AutoPhase("high", high.concurrency, high.rate)
        t -= self.high_s
        return _between("cooldown", high, low, t / self.cooldown_s)


def _between(name: str, a: Preset, b: Preset, frac: float) -> AutoPhase:
    frac = min(1.0, max(0.0, frac))
    conc = round(a.concurrency + (b.concurrency - a.concurrency) * frac)
    # A rate of 0 means "no cap": treat it as the end point, not as zero.
    if a.rate == 0 or b.rate == 0:
        rate = b.rate if frac >= 0.5 else a.rate
    else:
        rate = round(a.rate + (b.rate - a.rate) * frac, 1)
    return AutoPhase(name, conc, rate)
