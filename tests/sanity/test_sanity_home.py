"""tests/sanity/run gives ansible-test a home of its own: its pip bootstrap script never lands in the user's.

ansible-test reads the script from ~/.ansible/test/cache/get_pip_<version>.py
(ansible_test/_util/target/setup/requirements.py, bootstrap()), so what matters is which
file that path is for the ansible-test the script starts. A stand-in ansible-test reports
its HOME and that file; the real one is run by `make sanity`, whose first run in a fresh
home bootstraps pip with the stand-in in every virtual environment it builds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO

RUN = REPO / "tests" / "sanity" / "run"
STANDIN = REPO / "tests" / "sanity" / "get_pip_standin.py"
REPORTER = textwrap.dedent("""\
    import json, os, sys
    cache = os.path.expanduser("~/.ansible/test/cache")
    files = {n: open(os.path.join(cache, n)).readline().strip() for n in sorted(os.listdir(cache))}
    print(json.dumps({"home": os.environ["HOME"], "args": sys.argv[1:], "cache": files}))
""")


def pip_script_name() -> str:
    import ansible_test._internal.python_requirements as reqs  # type: ignore[import-not-found]
    text = Path(reqs.__file__).read_text()
    version = text.split("pip='", 1)[1].split("'", 1)[0]
    return "get_pip_{0}.py".format(version.replace(".", "_"))


@pytest.fixture
def sanity(tmp_path: Path):
    """Runs tests/sanity/run with a throwaway user home and a reporting ansible-test."""
    home = tmp_path / "home"
    (home / ".ansible" / "test" / "cache").mkdir(parents=True)
    reporter = tmp_path / "ansible-test"
    reporter.write_text(f"#!{sys.executable}\n" + REPORTER)
    reporter.chmod(0o755)

    def run(mode: str | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "GTC_SANITY_HOME")}
        env.update(HOME=str(home), GTC_ANSIBLE_TEST=str(reporter))
        if mode:
            env["GTC_SANITY_PIP_BOOTSTRAP"] = mode
        proc = subprocess.run([str(RUN), "--test", "compile"], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        report["output"] = proc.stdout
        return report

    run.home = home  # type: ignore[attr-defined]
    return run


def user_cache(home: Path) -> dict[str, str]:
    cache = home / ".ansible" / "test" / "cache"
    return {p.name: p.read_text() for p in cache.iterdir()}


def test_the_stand_in_lives_in_the_runs_own_home_and_the_users_stays_clean(sanity) -> None:
    name = pip_script_name()
    marker = STANDIN.read_text().splitlines()[0]
    # What an earlier version of the script left in the user's cache goes; a real script stays.
    (sanity.home / ".ansible/test/cache" / name).write_text(STANDIN.read_text())
    (sanity.home / ".ansible/test/cache" / "get_pip_23_1.py").write_text("# the real get-pip.py\n")
    report = sanity()
    own = sanity.home / ".cache" / "gtc-demo" / "ansible-test-home"
    assert report["home"] == str(own)
    assert report["args"][:4] == ["sanity", "--color", "no", "--python"] and "--requirements" in report["args"]
    assert report["cache"] == {name: marker}
    assert user_cache(sanity.home) == {"get_pip_23_1.py": "# the real get-pip.py\n"}
    assert "removed the stand-in an earlier run left in" in report["output"]


def test_auto_uses_the_real_script_when_the_user_has_it_and_download_leaves_it_to_ansible_test(sanity) -> None:
    name = pip_script_name()
    real = "# get-pip.py as ansible-test downloads it\n"
    (sanity.home / ".ansible/test/cache" / name).write_text(real)
    assert sanity()["cache"] == {name: real.strip()}
    assert user_cache(sanity.home) == {name: real}  # read, not written
    assert sanity("offline")["cache"] == {name: STANDIN.read_text().splitlines()[0]}
    assert sanity("download")["cache"] == {}  # the stand-in goes; ansible-test would download the real one
