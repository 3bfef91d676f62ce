"""Per-channel IoU of the dual-head model's masks, over every valid pixel of every image
(dataset-level, like segmentation's metrics), and the gate's measures of one mask."""

from __future__ import annotations

import numpy as np


def fired(probs: np.ndarray, exclusive: bool) -> np.ndarray:
    """[K, H, W] channel probabilities → [K, H, W] booleans: sigmoid ≥ 0.5, or for exclusive
    channels the channel that wins over background (1 - Σ p) and the others."""
    if not exclusive:
        return probs >= 0.5
    background = 1.0 - probs.sum(axis=0, keepdims=True)
    winner = np.concatenate([background, probs]).argmax(axis=0)
    return np.stack([winner == k + 1 for k in range(probs.shape[0])])


class ChannelIoU:
    def __init__(self, channels: list[str]) -> None:
        self.channels = channels
        self.inter = np.zeros(len(channels), np.int64)
        self.union = np.zeros(len(channels), np.int64)
        self.truth = np.zeros(len(channels), np.int64)

    def update(self, pred: np.ndarray, bits: np.ndarray) -> None:
        """pred [K, H, W] booleans; bits [H, W] channel bits (255 = ignore)."""
        valid = bits != 255
        for k in range(len(self.channels)):
            truth = ((bits >> k) & 1).astype(bool) & valid
            p = pred[k] & valid
            self.inter[k] += int((p & truth).sum())
            self.union[k] += int((p | truth).sum())
            self.truth[k] += int(truth.sum())

    def compute(self) -> dict[str, object]:
        per = {
            name: float(self.inter[k] / self.union[k])
            for k, name in enumerate(self.channels)
            if self.union[k] > 0
        }
        return {
            "seg_miou": float(np.mean(list(per.values()))) if per else 0.0,
            "per_channel_iou": per,
        }
