"""The artefact resolver: env folder, then ../shared, then a pinned, verified download."""

from __future__ import annotations

import functools
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import artifacts

KEDA = "charts/keda-2.18.1.tgz"
GATEWAY_CRD = "schemas/crds/gateway-api/gateway.networking.k8s.io_gateways.yaml"


def _chart_tgz(files: dict[str, bytes], top: str = "demo", mtime: int = 0, reverse: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in sorted(files, reverse=reverse):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(files[name])
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_shared(tmp_path, monkeypatch):
    """No env folder, no ../shared: only the download path is left."""
    monkeypatch.setattr(artifacts, "REPO", tmp_path / "nowhere" / "repo")
    monkeypatch.delenv(artifacts.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_env_folder_comes_first(tmp_path, monkeypatch):
    mine = tmp_path / "mine" / "charts"
    mine.mkdir(parents=True)
    (mine / "keda-2.18.1.tgz").write_bytes(b"x")
    monkeypatch.setenv(artifacts.ENV_VAR, str(tmp_path / "mine"))
    assert artifacts.resolve(KEDA) == mine / "keda-2.18.1.tgz"


def test_shared_beside_the_checkout_is_used_without_download():
    shared = artifacts.REPO.parent / "shared"
    if not (shared / KEDA).is_file():
        pytest.fail(f"this test expects the team's shared folder at {shared}")
    assert artifacts.resolve(KEDA) == shared / KEDA
    assert artifacts.resolve_dir("schemas/crds/gateway-api") == shared / "schemas/crds/gateway-api"


def test_every_pinned_file_in_shared_matches_its_pin():
    """The pins were computed from the team's copies; a changed copy (or pin) shows here."""
    shared = artifacts.REPO.parent / "shared"
    for relpath, artifact in artifacts.MANIFEST.items():
        path = shared / relpath
        assert path.is_file(), relpath
        assert artifacts._verify(artifact, path) == artifact.sha256, relpath


def test_download_is_verified_and_cached(no_shared, file_server, monkeypatch):
    root, url = file_server
    body = b"apiVersion: apiextensions.k8s.io/v1\n"
    (root / "gw.yaml").write_bytes(body)
    sha = artifacts.hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(artifacts.MANIFEST, GATEWAY_CRD, artifacts.Artifact(f"{url}/gw.yaml", sha))
    path = artifacts.resolve(GATEWAY_CRD)
    assert path.read_bytes() == body
    assert path.is_relative_to(artifacts.cache_dir())
    (root / "gw.yaml").unlink()  # a second call must not need the network
    assert artifacts.resolve(GATEWAY_CRD) == path


def test_download_with_another_digest_is_refused_and_not_kept(no_shared, file_server, monkeypatch):
    root, url = file_server
    (root / "gw.yaml").write_bytes(b"tampered")
    monkeypatch.setitem(artifacts.MANIFEST, GATEWAY_CRD, artifacts.Artifact(f"{url}/gw.yaml", "0" * 64))
    with pytest.raises(artifacts.ArtifactError, match="refusing to use it"):
        artifacts.resolve(GATEWAY_CRD)
    assert not (artifacts.cache_dir() / GATEWAY_CRD).exists()


def test_unreachable_download_says_how_to_provide_it(no_shared, monkeypatch):
    monkeypatch.setitem(artifacts.MANIFEST, GATEWAY_CRD, artifacts.Artifact("http://127.0.0.1:9/none", "0" * 64))
    with pytest.raises(artifacts.ArtifactError, match=artifacts.ENV_VAR):
        artifacts.resolve(GATEWAY_CRD)


def test_unknown_artefact_is_an_error(no_shared):
    with pytest.raises(artifacts.ArtifactError, match="not in the pinned manifest"):
        artifacts.resolve("charts/nothing-0.0.0.tgz")


def test_chart_digest_ignores_packaging_but_not_content(tmp_path):
    files = {"Chart.yaml": b"name: demo\nversion: 1.0.0\n", "values.yaml": b"a: 1\n", "templates/x.yaml": b"k: v\n"}
    one, two = tmp_path / "one.tgz", tmp_path / "two.tgz"
    one.write_bytes(_chart_tgz(files, mtime=0))
    two.write_bytes(_chart_tgz(files, mtime=1_700_000_000, reverse=True))
    assert one.read_bytes() != two.read_bytes()
    assert artifacts.content_digest(one) == artifacts.content_digest(two)
    three = tmp_path / "three.tgz"
    three.write_bytes(_chart_tgz({**files, "values.yaml": b"a: 2\n"}))
    assert artifacts.content_digest(three) != artifacts.content_digest(one)


def test_chart_digest_same_for_a_dependency_as_folder_or_archive(tmp_path):
    sub = {"Chart.yaml": b"name: sub\n", "values.yaml": b"b: 1\n"}
    parent = {"Chart.yaml": b"name: demo\n"}
    as_folder = {**parent, **{f"charts/sub/{k}": v for k, v in sub.items()}}
    as_archive = {**parent, "charts/sub-1.0.0.tgz": _chart_tgz(sub, top="sub")}
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    a.write_bytes(_chart_tgz(as_folder))
    b.write_bytes(_chart_tgz(as_archive))
    assert artifacts.content_digest(a) == artifacts.content_digest(b)
