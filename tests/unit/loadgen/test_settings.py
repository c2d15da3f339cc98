"""Settings validation, presets and the auto-mode schedule."""

import json

import pytest

from gtc_loadgen.settings import (DEFAULT_PRESETS, AutoSchedule, Settings, SettingsError, load_presets)


def test_defaults_are_valid_and_round_trip():
    s = Settings()
    assert Settings().patched(s.to_dict()) == s


@pytest.mark.parametrize(("patch", "needle"), [
    ({"concurrency": -1}, "concurrency must be between 0 and 512"),
    ({"concurrency": 513}, "concurrency"),
    ({"concurrency": 2.5}, "whole number"),
    ({"concurrency": "many"}, "concurrency must be a number"),
    ({"concurrency": True}, "concurrency must be a number"),
    ({"rate": float("nan")}, "rate"),
    ({"rate": 1e9}, "rate must be between 0 and 500"),
    ({"routing": 3}, "routing must be a frontend's id, got 3"),
    ({"running": "yes"}, "running must be true or false"),
    ({"turns_min": 6, "turns_max": 4}, "turns_min (6) must not exceed turns_max (4)"),
    ({"think_min_s": 9, "think_max_s": 1}, "think_min_s"),
    ({"auto_ramp_s": 1}, "auto_ramp_s must be between 2 and 3600"),
    ({"bogus": 1}, "unknown setting 'bogus'"),
])
def test_out_of_range_is_refused_with_the_name(patch, needle):
    s = Settings()
    with pytest.raises(SettingsError, match=None) as err:
        s.patched(patch)
    assert needle in str(err.value)


def test_refusal_changes_nothing():
    s = Settings(concurrency=7)
    with pytest.raises(SettingsError):
        s.patched({"concurrency": 9, "routing": "nope"}, routings=("kv", "round_robin"))
    assert s.concurrency == 7


def test_numbers_from_strings_and_custom_preset():
    s = Settings(preset="booth").patched({"concurrency": "12", "rate": "2.5"})
    assert (s.concurrency, s.rate, s.preset) == (12, 2.5, "custom")
    # Switching routing is not a load change: the preset stays.
    assert Settings(preset="busy").patched({"routing": "round_robin"}).preset == "busy"


def test_presets_apply_and_leave_auto():
    s = Settings(auto=True).with_preset("busy", DEFAULT_PRESETS)
    p = DEFAULT_PRESETS["busy"]
    assert (s.concurrency, s.rate, s.think_min_s, s.preset, s.auto) == (p.concurrency, p.rate, p.think_min_s, "busy", False)
    with pytest.raises(SettingsError, match="unknown preset 'party'"):
        s.with_preset("party", DEFAULT_PRESETS)


def test_presets_grow_with_load():
    order = [DEFAULT_PRESETS[n].concurrency for n in ("idle", "booth", "busy", "stress")]
    assert order == sorted(order) and len(set(order)) == 4


def test_load_presets_file(tmp_path):
    f = tmp_path / "presets.json"
    f.write_text(json.dumps({"booth": {"concurrency": 20}, "demo": {"concurrency": 3, "rate": 1}}))
    presets = load_presets(f)
    assert presets["booth"].concurrency == 20 and presets["booth"].rate == DEFAULT_PRESETS["booth"].rate
    assert presets["demo"].concurrency == 3 and presets["idle"] == DEFAULT_PRESETS["idle"]
    f.write_text(json.dumps({"booth": {"concurrency": 9999}}))
    with pytest.raises(SettingsError, match="concurrency"):
        load_presets(f)
    f.write_text(json.dumps({"booth": {"colour": "red"}}))
    with pytest.raises(SettingsError, match="unknown keys"):
        load_presets(f)
    # The same object given inline (the role passes it on the command line).
    inline = load_presets(json.dumps({"demo": {"concurrency": 3, "rate": 1}}))
    assert inline["demo"].concurrency == 3 and inline["booth"] == DEFAULT_PRESETS["booth"]
    with pytest.raises(SettingsError, match="--presets: not valid JSON"):
        load_presets("{nope")


def test_auto_schedule_cycles_through_its_phases():
    sched = AutoSchedule(ramp_s=10, steady_s=20, high_s=10, cooldown_s=10, presets=DEFAULT_PRESETS)
    idle, booth, busy = (DEFAULT_PRESETS[n] for n in ("idle", "booth", "busy"))
    assert sched.cycle_s == 50
    assert sched.at(0).name == "ramp-up" and sched.at(0).concurrency == idle.concurrency
    mid = sched.at(5)
    assert idle.concurrency < mid.concurrency < booth.concurrency
    ramp = [sched.at(t).concurrency for t in range(10)]
    assert ramp == sorted(ramp)  # never steps down while ramping up
    assert sched.at(15) == sched.at(29)
    assert (sched.at(15).name, sched.at(15).concurrency, sched.at(15).rate) == ("steady", booth.concurrency, booth.rate)
    assert (sched.at(35).name, sched.at(35).concurrency) == ("high", busy.concurrency)
    cool = [sched.at(40 + t).concurrency for t in range(10)]
    assert sched.at(41).name == "cooldown" and cool == sorted(cool, reverse=True)
    # ... and then it starts again.
    assert sched.at(50) == sched.at(0) and sched.at(65) == sched.at(15)


def test_auto_schedule_from_settings():
    s = Settings(auto_ramp_s=5, auto_steady_s=6, auto_high_s=7, auto_cooldown_s=8)
    assert AutoSchedule.from_settings(s, DEFAULT_PRESETS).cycle_s == 26
