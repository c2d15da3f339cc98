"""One resolver for the public artefacts the tests need: upstream charts, CRDs, DigitalOcean's OpenAPI spec.

They are never copied into the project. A test asks for a path in the layout
of the team's ``shared/`` folder (``charts/keda-2.18.1.tgz``,
``schemas/crds/gateway-api``) and gets a local file or folder, found in order:

1. ``$GTC_SHARED_DIR``: a folder with that layout (a user's own copy);
2. ``../shared`` beside the checkout, where the team keeps it;
3. a download from the pinned upstream URL into
   ``${XDG_CACHE_HOME:-~/.cache}/gtc-demo/artifacts``, checked against the
   sha256 pinned in ``MANIFEST`` before it is used; a second run reuses it.

What the sha256 covers differs by kind, because not every artefact is a file
upstream publishes byte for byte:

- ``raw``: a file served unchanged by the repository at a pinned commit (the
  CRDs): sha256 of the bytes.
- ``chart``: a Helm chart archive. The team's archives are ``helm package`` of
  the chart folder at the upstream tag, the chart repositories publish their
  own packaging of the same files, so the bytes differ while the content does
  not. The pin is ``content_digest``: sha256 over every file's path and sha256,
  nested chart archives unpacked in place (``charts/<name>/...``).
- ``bundle``: DigitalOcean's spec, which is a bundle that ``@redocly/cli``
  makes from the repository at a pinned commit: the recipe downloads that
  commit, bundles it with the pinned redocly, and checks the bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "GTC_SHARED_DIR"


@dataclass(frozen=True)
class Artifact:
    """One pinned upstream file: where it comes from and what it must hash to."""

    url: str
    sha256: str
    kind: str = "raw"  # raw | chart | bundle


def _raw(repo: str, ref: str, path: str, sha256: str) -> Artifact:
    return Artifact(f"https://raw.githubusercontent.com/{repo}/{ref}/{path}", sha256)


_DYNAMO = ("ai-dynamo/dynamo", "2a6da14c83617f5412caba5777dbf0e2399e9c5f", "deploy/operator/config/crd/bases")
_GATEWAY = ("kubernetes-sigs/gateway-api", "v1.6.1", "config/crd/standard")
_CERT_MANAGER = ("cert-manager/cert-manager", "24e33194fb39488eff2bbf10c6dc640f407cad44", "deploy/crds")
_PROM_OPERATOR = ("prometheus-operator/prometheus-operator", "f8fafd475f3d132e239432ae6172de60a6cb6516",
                  "example/prometheus-operator-crd")

_CRDS = {
    "dynamo": (_DYNAMO, {
        "nvidia.com_dynamocheckpoints.yaml": "2502bb61b5ded7ec27c6f79583b1b6f42cd7a3c0e6187b39a836e16592d43614",
        "nvidia.com_dynamocomponentdeployments.yaml": "7647712922d59d03f2f291a530f374f83c986f96e5e953b6ff2fd829c8bfc521",
        "nvidia.com_dynamographdeploymentrequests.yaml":
            "a4d453c2d9c6da764e0b6b7eb3462911e1ba55022c5f8baf0e211e33a4a8318d",
        "nvidia.com_dynamographdeployments.yaml": "055d7331cfbf1cca6864ee9005239de7e869dd79d69418126a52634d009c55d8",
        "nvidia.com_dynamographdeploymentscalingadapters.yaml":
            "e6fc281cce90895203feb7101aab0c707fc3a95720e1693463e08a4a47216a98",
        "nvidia.com_dynamomodels.yaml": "a8eb52717826a2dfaeb56f0237affa3f2cd1cdd2d2a7202f2e325835d1c23b3b",
        "nvidia.com_dynamoworkermetadatas.yaml": "c756912ed6b12cec88bca966e8dc1d0c9003c6f29d28d5665bf61e2db5c43dea",
    }),
    "gateway-api": (_GATEWAY, {
        "gateway.networking.k8s.io_gatewayclasses.yaml": "53710048ba26f8620eed59d5e51b157ecf040daf5c6eef31a4b991e0808c4be5",
        "gateway.networking.k8s.io_gateways.yaml": "25b885f5870b8fff1ae82efa2628b2761cef3745900c2aecf8fb76629a01255a",
        "gateway.networking.k8s.io_httproutes.yaml": "a424a0d6c953b162e71d1d97bb7e75012d8f1ac264e7274f2763d1b96ab39852",
        "gateway.networking.k8s.io_referencegrants.yaml": "8c645e9333cfa67790cc2a53e0c00076f88b2bd4230d2b49688c78bc34f9b2c3",
    }),
    "cert-manager": (_CERT_MANAGER, {
        "cert-manager.io_certificates.yaml": "7ad91029c00ec959d54215b19d3b1a9b7e0247eaa60f987151c2b70d8661f8af",
        "cert-manager.io_clusterissuers.yaml": "30008001b78aafb8e110af61359561104b5fafc3a4dc6ac0013245d0ee3fe4ca",
        "cert-manager.io_issuers.yaml": "05e37efb02777e0362d24269fa103c2fc11419f9c85e31854ef873e5d9e5c5cc",
    }),
    "prometheus-operator": (_PROM_OPERATOR, {
        "monitoring.coreos.com_podmonitors.yaml": "45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d",
        "monitoring.coreos.com_servicemonitors.yaml": "a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32",
    }),
}

# The chart repositories users install from (the same ones roles/cluster_config
# pins), with each chart's content digest (see content_digest), computed from
# the team's archives: `helm package` of the upstream tag's folder (tags and
# commits in the shared folder's charts/SOURCES.md).
_CHARTS = {
    "cert-manager-v1.21.1.tgz": (
        "https://charts.jetstack.io/charts/cert-manager-v1.21.1.tgz",
        "2938bb637ae1427f2adfd2b99b6b3ebc236a8019e6240e4b6424126c88a44ba7"),
    "external-dns-1.19.0.tgz": (
        "https://kubernetes-sigs.github.io/external-dns/external-dns-1.19.0.tgz",
        "1ea4c604867055fee6a600505dd43549ee809769391e836c34a3b8761d812f48"),
    "kube-prometheus-stack-79.5.0.tgz": (
        "https://github.com/prometheus-community/helm-charts/releases/download/"
        "kube-prometheus-stack-79.5.0/kube-prometheus-stack-79.5.0.tgz",
        "5020789108d90560d0c3ae3c35b6dc41386f9d11514d1e27bd9d897679f31ade"),
    "dcgm-exporter-4.6.0.tgz": (
        "https://nvidia.github.io/dcgm-exporter/helm-charts/dcgm-exporter-4.6.0.tgz",
        "cca0ade07ed461a781bb9717ca02c1b67129891063e15342cb82e0d12ef6cde1"),
    "keda-2.18.1.tgz": (
        "https://kedacore.github.io/charts/keda-2.18.1.tgz",
        "967aaf6f58af6d472bd5da9db749a70141f1f6376f34be8bd4774eeb57703461"),
}

MANIFEST: dict[str, Artifact] = {}
for _folder, ((_repo, _ref, _base), _files) in _CRDS.items():
    for _name, _sha in _files.items():
        MANIFEST[f"schemas/crds/{_folder}/{_name}"] = _raw(_repo, _ref, f"{_base}/{_name}", _sha)
for _name, (_url, _digest) in _CHARTS.items():
    MANIFEST[f"charts/{_name}"] = Artifact(_url, _digest, kind="chart")
MANIFEST["schemas/digitalocean-openapi/DigitalOcean-public.v2.bundled.yaml"] = Artifact(
    "https://codeload.github.com/digitalocean/openapi/tar.gz/7c1300c479fed9c353cda9fc21cd968619552304",
    "3d7ed250100a1782cbed1ff5e9d534aebcff3da9326bcb81abcfeb3f6c73f436", kind="bundle")
REDOCLY = "@redocly/cli@2.77.0"


class ArtifactError(RuntimeError):
    """An artefact that cannot be found, fetched or verified; the message says how to provide it."""


def shared_roots() -> list[Path]:
    """The folders searched before any download, in order."""
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(REPO.parent / "shared")
    return roots


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")))
    return base / "gtc-demo" / "artifacts"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tar_entries(data: bytes, prefix: str = "", keep_top: bool = False) -> list[tuple[str, str]]:
    """(path, sha256) of every file in a chart archive, nested chart archives unpacked in place.

    The archive's top folder (the chart's name) is dropped for the outer chart
    and kept for a dependency, which then sits at ``charts/<name>/...`` as it
    does when the dependency is a folder.
    """
    entries: list[tuple[str, str]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            if not member.isfile() or "/" not in member.name:
                continue
            top, inner = member.name.split("/", 1)
            here = f"{prefix}{top}/" if keep_top else prefix
            handle = tar.extractfile(member)
            content = handle.read() if handle else b""
            if inner.startswith("charts/") and inner.endswith(".tgz") and inner.count("/") == 1:
                entries.extend(_tar_entries(content, prefix=f"{here}charts/", keep_top=True))
                continue
            entries.append((here + inner, hashlib.sha256(content).hexdigest()))
    return entries


def content_digest(archive: Path) -> str:
    """sha256 over the sorted (path, sha256) of a chart archive's files; packaging does not change it."""
    entries = sorted(_tar_entries(archive.read_bytes()))
    return hashlib.sha256("".join(f"{p}\0{h}\n" for p, h in entries).encode()).hexdigest()


def _verify(artifact: Artifact, path: Path) -> str:
    """The digest of ``path`` as the artefact's kind defines it."""
    return content_digest(path) if artifact.kind == "chart" else sha256_file(path)


def _download(url: str, dest: Path, timeout: float = 120) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "gtc-demo-tests"})
    with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out)


def _bundle(tarball: Path, dest: Path) -> None:
    """DigitalOcean's spec as the team bundled it: redocly over the repository at the pinned commit."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        top = next(Path(tmp).iterdir())
        subprocess.run(["npx", "--yes", REDOCLY, "bundle", "specification/DigitalOcean-public.v2.yaml",
                        "-o", str(dest)], cwd=top, check=True, capture_output=True, text=True, timeout=600)


def fetch(relpath: str) -> Path:
    """Download one manifest entry into the cache (if not there and verified already) and return it."""
    artifact = MANIFEST.get(relpath)
    if artifact is None:
        raise ArtifactError(f"{relpath}: not in the pinned manifest (tests/artifacts.py)")
    if not artifact.sha256:
        raise ArtifactError(f"{relpath}: no digest is pinned for a download; set {ENV_VAR} to a folder that has it")
    dest = cache_dir() / relpath
    if dest.exists() and _verify(artifact, dest) == artifact.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        if artifact.kind == "bundle":
            tarball = dest.with_name(dest.name + ".src.tar.gz")
            _download(artifact.url, tarball)
            _bundle(tarball, partial)
            tarball.unlink()
        else:
            _download(artifact.url, partial)
    except (OSError, subprocess.CalledProcessError) as exc:
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"{relpath}: could not fetch {artifact.url} ({exc}); set {ENV_VAR} to a folder "
                            "with the shared layout instead") from exc
    got = _verify(artifact, partial)
    if got != artifact.sha256:
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"{relpath}: {artifact.url} has {artifact.kind} digest {got}, "
                            f"pinned {artifact.sha256}: refusing to use it")
    partial.replace(dest)
    return dest


def resolve(relpath: str) -> Path:
    """A local path for one artefact (a file in the shared layout), found or fetched."""
    relpath = relpath.strip("/")
    for root in shared_roots():
        candidate = root / relpath
        if candidate.is_file():
            return candidate
    return fetch(relpath)


def resolve_dir(relpath: str) -> Path:
    """A local folder holding every pinned file under ``relpath`` (a shared folder, or the cache)."""
    relpath = relpath.strip("/")
    wanted = sorted(k for k in MANIFEST if k.startswith(relpath + "/"))
    for root in shared_roots():
        candidate = root / relpath
        if candidate.is_dir() and all((root / k).is_file() for k in wanted):
            return candidate
    if not wanted:
        raise ArtifactError(f"{relpath}: no such folder in {[str(r) for r in shared_roots()]} or the manifest")
    for key in wanted:
        fetch(key)
    return cache_dir() / relpath
