"""The task registry: what each task type is, as data. Its code half lives in workers/ml/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.errors import Invalid


@dataclass(frozen=True)
class TaskSpec:
    """A task type described as data only, so the web process can list it without torch.

    `features` says which workflow stages this build supports for the task; the web and API
    layers show unavailable stages as such instead of offering a button that cannot work.
    """

    key: str
    title: str
    description: str
    annotation_kinds: tuple[str, ...]
    primary_metric: str = ""
    metric_mode: str = "max"
    default_model: str | None = None
    badge_color: str = "#64748b"
    features: frozenset[str] = frozenset({"projects"})
    extra: dict[str, Any] = field(default_factory=dict)

    def supports(self, feature: str) -> bool:
        return feature in self.features


FEATURES = ("projects", "import", "splits", "train", "evaluate", "export", "predict")

_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add or replace a task type; built-ins use the same door a plugin would."""
    unknown = set(spec.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"task {spec.key}: unknown features {sorted(unknown)}")
    _TASKS[spec.key] = spec
    return spec


def enable_features(key: str, *features: str) -> TaskSpec:
    """Mark more workflow stages as available for a task (each feature module calls this)."""
    from dataclasses import replace

    spec = _TASKS[key]
    return register_task(replace(spec, features=spec.features | frozenset(features)))


def get_task(key: str) -> TaskSpec:
    try:
        return _TASKS[key]
    except KeyError:
        valid = ", ".join(sorted(_TASKS))
        raise Invalid(
            f"task_type={key!r} is not a task type; use one of: {valid}.",
            code="unknown_task_type",
            details={"valid": sorted(_TASKS)},
        ) from None


def list_tasks() -> list[TaskSpec]:
    return list(_TASKS.values())
