"""No secret reaches the local demo's output, state directory or logs (issue 16).

A distinct fake value goes into every secret variable a user may have exported
(the same names as the rehearsal's, tests/rehearsal/harness.py), then
`site.yml -vvv` runs on the running demo: at -vvv Ansible prints every module's
arguments and results, so a task that handles a secret without no_log shows it.
The output, every file under the demo's home (its state: configs, logs,
supervisord's files) and every log are searched for each value, as itself and
base64-encoded.
"""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from rehearsal.harness import FAKE_SECRETS, files_holding, secret_forms

pytestmark = pytest.mark.integration

# The rehearsal's list of secret variables (one owner: tests/rehearsal/harness.py), each with a value of
# its own here, plus the DigitalOcean token's second name, which the roles also read.
SENTINELS = {**{name: f"{value}_local" for name, value in FAKE_SECRETS.items()},
             "DIGITALOCEAN_TOKEN": "dop_v1_local_sentinel_41d3"}
# The follow-up writer would call DigitalOcean with a key set: keep it on a closed local port.
NO_EGRESS = ("-e", "loadgen_followup_url=http://127.0.0.1:9/v1")


def control_status(loadgen_url: str, token: str | None) -> int:
    """The HTTP status of a state-changing call (an empty settings change), with or without a token."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{loadgen_url}/api/settings", data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_site_vvv_writes_no_secret_to_its_output_or_the_state_directory(local_demo) -> None:
    run = local_demo.playbook("site.yml", "-vvv", *NO_EGRESS, env=SENTINELS)
    try:
        assert run.returncode == 0, run.output[-4000:]
        assert "-vvv" in run.args and "EXEC" in run.output, "not a verbose run"
        leaked = sorted(name for name, value in SENTINELS.items()
                        if any(form in run.output for form in secret_forms(value)))
        assert leaked == [], f"in site.yml -vvv's output: {leaked}"
        assert files_holding(local_demo.home, SENTINELS) == {}
        # The values did arrive (else the search above would prove nothing): the page's controls
        # now need the sentinel presenter token, which reached the app only as a salted hash.
        assert control_status(local_demo.loadgen_url, None) == 401
        assert control_status(local_demo.loadgen_url, SENTINELS["GTC_PRESENTER_TOKEN"]) != 401
    finally:
        # The demo as the other tests know it: no presenter token, no follow-up key.
        restored = local_demo.playbook("site.yml")
        assert restored.returncode == 0, restored.output[-4000:]
    assert control_status(local_demo.loadgen_url, None) != 401
