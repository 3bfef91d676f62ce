"""The two halves of every task type agree, and every declared stage has code behind it.

A task type is app/tasks/<task>.py (data) + workers/ml/tasks/<task>/ (code) +
templates/partials/tasks/<task>/ (result partials); this test fails when a task declares a
workflow stage its other halves cannot serve, and when shared code names a task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.catalog import list_models
from app.importers import list_importers
from app.tasks import list_tasks
from workers.ml.tasks import get_task_code, task_code_keys
from workers.ml.tasks.base import TaskCode

ROOT = Path(__file__).resolve().parents[2]
TASKS = list_tasks()
CODE_FEATURES = {"train", "evaluate", "export", "predict"}


def test_every_task_with_a_code_stage_has_a_code_half_and_vice_versa() -> None:
    with_code = {t.key for t in TASKS if t.features & CODE_FEATURES}
    assert with_code == set(task_code_keys())
    assert set(task_code_keys()) <= {t.key for t in TASKS}


@pytest.mark.parametrize("spec", TASKS, ids=lambda s: s.key)
def test_declared_stages_have_what_they_need(spec) -> None:  # type: ignore[no-untyped-def]
    partials = ROOT / "templates" / spec.partials
    if spec.supports("import"):
        assert spec.map_sample is not None, "import needs an import mapping"
        assert any(spec.key in i.tasks for i in list_importers()), "no importer reads it"
    if spec.supports("train"):
        assert spec.config_model is not None and spec.primary_metric.startswith("val/")
        assert spec.metric_mode in ("max", "min")
        catalog = {m.id for m in list_models(spec.key)}
        assert spec.default_model in catalog
        assert catalog == get_task_code(spec.key).model_ids(), "catalog and builders differ"
        assert set(spec.curve_metrics) and spec.primary_metric in spec.curve_metrics
    code = get_task_code(spec.key) if spec.features & CODE_FEATURES else None
    if spec.supports("evaluate"):
        assert code is not None
        if type(code).evaluate is TaskCode.evaluate:  # the conventional module
            assert callable(code.part("evaluate").evaluate)
        keys = [m.key for m in spec.metrics]
        assert spec.summary_metric in keys and len(keys) == len(set(keys))
        for name in ("_evaluation.html", "_result.html", "_result_detail.html"):
            assert (partials / name).is_file(), f"{partials / name} is missing"
    if spec.supports("predict"):
        assert spec.supports("export"), "prediction runs exported models"
        assert (partials / "_prediction.html").is_file()
        assert get_task_code(spec.key).decoder.task == spec.key
    if spec.supports("export"):
        assert spec.supports("train") and code is not None
        if type(code).export_module is TaskCode.export_module:
            assert callable(code.part("export").export_module)
            assert callable(code.part("export").parity)


KEYS = "|".join(re.escape(t.key) for t in TASKS if t.key != "sketch")
TASK_NAME = re.compile(rf"""["']({KEYS})["']""")
SHARED = [
    *(ROOT / "app").rglob("*.py"),
    *(ROOT / "workers").rglob("*.py"),
    *(ROOT / "templates").rglob("*.html"),
    *(ROOT / "static" / "js").glob("*.js"),
]
# Homes that may name tasks: the tasks' own halves, and importers and model manifests (which
# say which tasks they serve: data).
ALLOWED = (
    "app/tasks/",
    "workers/ml/tasks/",
    "templates/partials/tasks/",
    "app/importers/",
    "app/catalog/",
)


def test_shared_code_names_no_task() -> None:
    offenders = []
    for path in SHARED:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TASK_NAME.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "shared code names a task:\n" + "\n".join(offenders)
