"""What the demo runs on, for the page's "2 × TP4 · 8 × H100 · <model>" line.

The dynamo role publishes it as ``dynamo__output.topology`` (the same keys on
every platform: replicas, tensor_parallel, engine, gpu, model; see
roles/dynamo/README.md); the loadgen role hands it to the app as
``--topology`` / ``LOADGEN_TOPOLOGY`` (a JSON object, inline or in a file).
Without it the page shows only the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .settings import SettingsError

ENGINES = ("mocker", "tensorrt_llm")


@dataclass(frozen=True)
class Topology:
    replicas: int
    tensor_parallel: int
    engine: str
    gpu: str
    model: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "--topology") -> Topology:
        """Refuses a missing or ill-typed key, naming it (the contract's shape, nothing guessed)."""
        missing = [k for k in ("replicas", "tensor_parallel", "engine", "gpu", "model") if k not in data]
        if missing:
            raise SettingsError(f"{source}: missing {', '.join(missing)}")
        for key in ("replicas", "tensor_parallel"):
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{source}: {key} must be a whole number >= 1, got {value!r}")
        for key in ("engine", "gpu", "model"):
            if not isinstance(data[key], str) or not data[key].strip():
                raise SettingsError(f"{source}: {key} must be a non-empty string, got {data[key]!r}")
        if data["engine"] not in ENGINES:
            raise SettingsError(f"{source}: engine must be one of {', '.join(ENGINES)}, got {data['engine']!r}")
        return cls(int(data["replicas"]), int(data["tensor_parallel"]), data["engine"], data["gpu"], data["model"])

    @property
    def label(self) -> str:
        """'2 × TP4 · 8 × H100 · nvidia/Llama-3.1-70B-Instruct-FP8'."""
        return f"{self.replicas} × TP{self.tensor_parallel} · {self.gpu} · {self.model}"

    def to_dict(self) -> dict[str, Any]:
        return {"replicas": self.replicas, "tensor_parallel": self.tensor_parallel, "engine": self.engine,
                "gpu": self.gpu, "model": self.model, "label": self.label}
