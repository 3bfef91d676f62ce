"""Per-task output decoding for exported models: numpy only, so the predict worker and the
plain deployment script never need torch. A task adds its module and registers a Decoder."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Decoder(Protocol):
    """Turns raw model outputs into predictions, a primary metric and an agreement rate."""

    task: str
    primary_metric: str

    def decode(
        self, outputs: np.ndarray, *, meta: dict[str, Any], top_k: int = 5
    ) -> list[dict[str, Any]]: ...

    def metric(self, outputs: np.ndarray, targets: list[Any], *, meta: dict[str, Any]) -> float: ...

    def agreement(self, a: np.ndarray, b: np.ndarray, *, meta: dict[str, Any]) -> float: ...


_DECODERS: dict[str, Decoder] = {}


def register_decoder(decoder: Decoder) -> Decoder:
    _DECODERS[decoder.task] = decoder
    return decoder


def get_decoder(task: str) -> Decoder:
    if task not in _DECODERS:
        raise KeyError(f"no output decoder for task {task!r}; known: {sorted(_DECODERS)}")
    return _DECODERS[task]


def decoder_tasks() -> list[str]:
    return sorted(_DECODERS)


from workers.ml.decoding import classification as _classification  # noqa: E402, F401
