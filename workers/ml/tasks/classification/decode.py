"""Classification outputs: logits [N, C] → softmax (single-label) or sigmoid (multi-label)."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.ml.tasks.base import Decoder, Outputs


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def thresholds_of(meta: dict[str, Any], classes: int) -> np.ndarray:
    values = meta.get("thresholds") or [0.5] * classes
    return np.asarray(values, dtype=np.float64)


class ClassificationDecoder(Decoder):
    """Single-label: top-k classes by softmax score; the metric is accuracy (argmax == label).
    Multi-label: classes whose sigmoid score reaches the class threshold; the metric is
    exact-match (subset) accuracy, the strictest reading, so a change in any label counts."""

    task = "classification"
    primary_metric = "accuracy"

    def decode(
        self,
        outputs: Outputs,
        *,
        meta: dict[str, Any],
        size: tuple[int, int],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        logits = np.asarray(outputs["logits"])[None, :]
        answer = self.decode_batch(logits, meta=meta, top_k=int(options.get("top_k", 5)))[0]
        if meta.get("segmentation") and "masks" in outputs:  # a dual-head model: gate first
            from workers.ml.tasks.classification.dual_head.decode import decode_dual

            embedding = outputs.get("embedding")
            return decode_dual(
                answer, outputs["masks"], meta=meta, size=size, options=options,
                embedding=embedding,
            )  # fmt: skip
        return answer

    def scores(self, outputs: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        logits = np.asarray(outputs, dtype=np.float64)
        return sigmoid(logits) if meta.get("multi_label") else softmax(logits)

    def predicted_sets(self, outputs: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        scores = self.scores(outputs, meta)
        if meta.get("multi_label"):
            return scores >= thresholds_of(meta, scores.shape[1])[None, :]
        return np.eye(scores.shape[1], dtype=bool)[scores.argmax(axis=1)]

    def decode_batch(
        self, outputs: np.ndarray, *, meta: dict[str, Any], top_k: int = 5
    ) -> list[dict[str, Any]]:
        classes: list[str] = list(meta["classes"])
        scores = self.scores(outputs, meta)
        chosen = self.predicted_sets(outputs, meta)
        results = []
        for row, picked in zip(scores, chosen, strict=True):
            order = np.argsort(-row, kind="stable")[: max(1, top_k)]
            top = [{"class": classes[i], "index": int(i), "score": float(row[i])} for i in order]
            labels = [
                {"class": classes[i], "index": int(i), "score": float(row[i])}
                for i in np.flatnonzero(picked)
            ]
            labels.sort(key=lambda item: -item["score"])
            results.append({"top": top, "labels": labels})
        return results

    def metric(self, outputs: np.ndarray, targets: list[Any], *, meta: dict[str, Any]) -> float:
        if not targets:
            return float("nan")
        chosen = self.predicted_sets(outputs, meta)
        truth = np.zeros_like(chosen)
        for row, target in enumerate(targets):
            indices = target if isinstance(target, list | tuple) else [target]
            truth[row, list(indices)] = True
        return float((chosen == truth).all(axis=1).mean())

    def agreement(self, a: np.ndarray, b: np.ndarray, *, meta: dict[str, Any]) -> float:
        if len(a) == 0:
            return float("nan")
        same = (self.predicted_sets(a, meta) == self.predicted_sets(b, meta)).all(axis=1)
        return float(same.mean())
