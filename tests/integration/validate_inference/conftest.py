"""The Dynamo stack the validate_inference integration tests ask.

Prefers the lead's shared ``local_demo`` fixture (tests/integration/conftest.py:
site.yml -i inventories/local on other ports with a temporary GTC_DEMO_HOME).
Until that fixture exists, starts the same processes itself: two
``dynamo.mocker`` workers and a KV and a round-robin ``dynamo.frontend`` on
free ports of 127.0.0.1, with file discovery, the TCP request plane and the
ZMQ event plane (no etcd, no NATS), loading the project's offline tokenizer
from roles/model_sync/files/local-model.

The simulated stack's virtual environment is built once and cached under
~/.cache/gtc-demo/dynamo-1.6.1 (a few minutes the first time, then seconds).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
MODEL = 'nvidia/Llama-3.1-70B-Instruct-FP8'
DYNAMO_VERSION = '1.6.1'
REQUIREMENTS = REPO / 'files' / 'local' / 'dynamo-requirements.txt'
MODEL_DIR = REPO / 'roles' / 'model_sync' / 'files' / 'local-model'
CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'gtc-demo'
READY_TIMEOUT_S = 180


def _dynamo_python() -> Path:
    """Build (once, under a lock) and return the cached venv's python."""
    venv = CACHE / ('dynamo-%s' % DYNAMO_VERSION)
    stamp = venv / '.installed'
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ('dynamo-%s.lock' % DYNAMO_VERSION), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not build it at once
        if stamp.exists() and stamp.read_text() == wanted:
            return venv / 'bin' / 'python'
        log = CACHE / ('dynamo-%s-install.log' % DYNAMO_VERSION)
        steps = [
            [sys.executable, '-m', 'venv', '--clear', str(venv)],
            [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '--no-deps',
             'ai-dynamo==%s' % DYNAMO_VERSION, 'ai-dynamo-runtime==%s' % DYNAMO_VERSION],
            [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '-r', str(REQUIREMENTS)],
        ]
        with open(log, 'w') as out:
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                    pytest.fail('building the Dynamo venv failed at %s; see %s' % (' '.join(step), log))
        stamp.write_text(wanted)
        return venv / 'bin' / 'python'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _served(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url + '/v1/models', timeout=2) as answer:
            return [m['id'] for m in json.load(answer)['data']]
    except (OSError, ValueError, KeyError):
        return []


class OwnStack:
    """Two mocker workers and two frontends, stopped by the process groups we started."""

    def __init__(self, python: Path, home: Path) -> None:
        self.python, self.home = python, home
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.env = dict(os.environ, DYN_DISCOVERY_BACKEND='file', DYN_FILE_KV=str(home / 'discovery'),
                        DYN_REQUEST_PLANE='tcp', DYN_EVENT_PLANE='zmq', PYTHONUNBUFFERED='1')
        self.env.pop('DYN_SYSTEM_PORT', None)

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.home / ('%s.log' % name), 'wb')
        proc = subprocess.Popen([str(self.python), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc))

    def start(self) -> dict[str, Any]:
        for worker in ('mocker-1', 'mocker-2'):
            self.spawn(worker, '-m', 'dynamo.mocker', '--model-path', str(MODEL_DIR), '--model-name', MODEL,
                       '--block-size', '32')
        urls = {}
        for key, mode in (('kv_url', 'kv'), ('round_robin_url', 'round-robin')):
            port = _free_port()
            self.spawn('frontend-%s' % mode, '-m', 'dynamo.frontend', '--router-mode', mode, '--http-port', str(port))
            urls[key] = 'http://127.0.0.1:%d' % port
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(MODEL in _served(u) for u in urls.values()):
            dead = [(n, p.returncode) for n, p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                pytest.fail('the Dynamo stack did not come up (%s); logs in %s:\n%s'
                            % ('exited: %s' % dead if dead else 'timeout after %ds' % READY_TIMEOUT_S, self.home, self.log_tails()))
            time.sleep(1)
        return dict(urls, model=MODEL)

    def log_tails(self) -> str:
        return '\n'.join('--- %s\n%s' % (n, (self.home / ('%s.log' % n)).read_text(errors='replace')[-1500:])
                         for n, _ in self.procs)

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture(scope='session')
def dynamo_frontends(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """``{"kv_url", "round_robin_url", "model"}`` of a running simulated Dynamo stack."""
    try:
        demo = request.getfixturevalue('local_demo')
    except pytest.FixtureLookupError:
        demo = None
    if demo is not None:
        # local_demo is a LocalDemo dataclass (tests/integration/conftest.py).
        yield dict(kv_url=demo.kv_url, round_robin_url=demo.round_robin_url, model=demo.model)
        return
    if not (MODEL_DIR / 'tokenizer.json').is_file():
        pytest.fail('%s/tokenizer.json is missing: the offline model directory of the model_sync role' % MODEL_DIR)
    python = _dynamo_python()
    with tempfile.TemporaryDirectory(prefix='gtc-demo-vi-') as home:
        stack = OwnStack(python, Path(home))
        try:
            yield stack.start()
        finally:
            stack.stop()
