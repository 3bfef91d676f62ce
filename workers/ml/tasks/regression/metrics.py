"""Regression metrics in numpy, in target units: MAE, MSE, RMSE and R² per target and their
means. R² is undefined (None) for a target that does not vary among the scored images: no
prediction can beat its mean, and 1 - SSE/0 means nothing; the mean R² then covers the others."""

from __future__ import annotations

from typing import Any

import numpy as np


def per_target(pred: np.ndarray, true: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for t, name in enumerate(names):
        p, y = pred[:, t].astype(np.float64), true[:, t].astype(np.float64)
        err = p - y
        mse = float(np.mean(err**2)) if len(y) else float("nan")
        total = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
        r2 = 1.0 - float(np.sum(err**2)) / total if total > 1e-12 * max(1, len(y)) else None
        rows.append(
            {
                "target": name,
                "n": len(y),
                "mae": float(np.mean(np.abs(err))) if len(y) else float("nan"),
                "mse": mse,
                "rmse": float(np.sqrt(mse)),
                "r2": r2,
                "mean": float(y.mean()) if len(y) else None,
                "std": float(y.std()) if len(y) else None,
            }
        )
    return rows


def regression_metrics(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict[str, Any]:
    """{"mae", "mse", "rmse", "r2" (means over targets), "per_target": [...]}."""
    rows = per_target(pred, true, names)
    defined = [r["r2"] for r in rows if r["r2"] is not None]
    return {
        "mae": float(np.mean([r["mae"] for r in rows])),
        "mse": float(np.mean([r["mse"] for r in rows])),
        "rmse": float(np.mean([r["rmse"] for r in rows])),
        "r2": float(np.mean(defined)) if defined else None,
        "r2_undefined": [r["target"] for r in rows if r["r2"] is None],
        "per_target": rows,
        "samples": len(true),
    }


def denormalize(z: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    mean = np.asarray(info.get("target_mean") or [0.0] * z.shape[1], np.float64)
    std = np.asarray(info.get("target_std") or [1.0] * z.shape[1], np.float64)
    return z.astype(np.float64) * std[None, :] + mean[None, :]
