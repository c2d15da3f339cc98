"""The engine's iteration scheduler, read from its one source: the dynamo role's ``dynamo_scheduler``.

The graph's TensorRT-LLM engine config, the local and kind mocker workers' flags and this
benchmark's simulator all run with the values in ``roles/dynamo/defaults/main.yml``
(``dynamo_scheduler``); ``mocker_engine_args`` turns them into the mocker's engine config
(``dynamo.mocker.config.normalize_mocker_config`` names: ``max_num_seqs``,
``max_num_batched_tokens``, ``enable_chunked_prefill``), as the role turns them into the mocker's
``--max-num-seqs``, ``--max-num-batched-tokens`` and ``--[no-]enable-chunked-prefill``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "dynamo" / "defaults" / "main.yml"
POLICIES = ("FIRST_COME_FIRST_SERVED", "EQUAL_PROGRESS")


@dataclass(frozen=True)
class Scheduler:
    max_batch_size: int
    max_num_tokens: int
    chunked_prefill: bool
    context_chunking_policy: str

    def __post_init__(self) -> None:
        if self.context_chunking_policy not in POLICIES:
            raise ValueError(f"context_chunking_policy {self.context_chunking_policy!r} is not one of {POLICIES}")
        if self.max_batch_size < 1 or self.max_num_tokens < 1:
            raise ValueError(f"bad scheduler limits {self}")

    def mocker_engine_args(self) -> dict[str, Any]:
        """The mocker's engine keys; refuses what the mocker cannot schedule (as the role's validate does)."""
        if self.context_chunking_policy != "FIRST_COME_FIRST_SERVED":
            raise ValueError(f"the mocker schedules contexts first come, first served only, not {self.context_chunking_policy}")
        return {"max_num_seqs": self.max_batch_size, "max_num_batched_tokens": self.max_num_tokens,
                "enable_chunked_prefill": self.chunked_prefill}

    def replace(self, **changes: Any) -> Scheduler:
        import dataclasses  # pylint: disable=import-outside-toplevel

        return dataclasses.replace(self, **changes)


def load(path: Path = DEFAULTS) -> Scheduler:
    """``dynamo_scheduler`` of the dynamo role's defaults."""
    import yaml  # pylint: disable=import-outside-toplevel

    data = yaml.safe_load(path.read_text(encoding="utf-8"))["dynamo_scheduler"]
    return Scheduler(max_batch_size=int(data["max_batch_size"]), max_num_tokens=int(data["max_num_tokens"]),
                     chunked_prefill=bool(data["chunked_prefill"]),
                     context_chunking_policy=str(data["context_chunking_policy"]))
