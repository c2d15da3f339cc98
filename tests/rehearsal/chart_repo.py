"""Public artefacts served from 127.0.0.1 the way their upstream hosts serve them.

- ``/charts/``: a Helm chart repository (``index.yaml`` made by ``helm repo
  index``, the archives beside it), so the role's own ``chart_repo_url`` path
  runs with only the URL changed.
- ``/<name>/``: plain folders of files (the Gateway API CRDs, as
  raw.githubusercontent.com serves a tag's ``config/crd/standard/``).

Nothing is copied into the project: the files are copied into a temporary
folder that the server removes when it stops.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        self.server.requests.append(args[0] if args else format)  # type: ignore[attr-defined]


class ArtifactServer:
    """A static HTTP server on 127.0.0.1 over a temporary folder: a chart repository plus file folders."""

    def __init__(self, helm: Path, archives: list[Path], folders: dict[str, Path] | None = None) -> None:
        self.helm = helm
        self.archives = list(archives)
        self.folders = dict(folders or {})
        self.root = Path(tempfile.mkdtemp(prefix="gtc-artifacts-"))
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    @property
    def chart_repo_url(self) -> str:
        return f"{self.url}/charts"

    def folder_url(self, name: str) -> str:
        return f"{self.url}/{name}/"

    @property
    def requests(self) -> list[str]:
        """Request lines served so far ("GET /charts/index.yaml HTTP/1.1")."""
        return list(self._server.requests) if self._server else []  # type: ignore[attr-defined]

    def start(self) -> "ArtifactServer":
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.requests = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        charts = self.root / "charts"
        charts.mkdir()
        for archive in self.archives:
            shutil.copy2(archive, charts / archive.name)
        subprocess.run([str(self.helm), "repo", "index", str(charts), "--url", self.chart_repo_url],
                       check=True, capture_output=True, text=True, timeout=120)
        for name, source in self.folders.items():
            shutil.copytree(source, self.root / name)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ArtifactServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
