"""Task-neutral evaluation storage: match rows, an error measure, several evaluations per
experiment (the last good one survives a failed re-run).

- evaluation_match: (true class, predicted class, iou, score) per image, background = NULL;
  backfilled from the classification columns (single-label) and the prediction JSON
  (multi-label: TP, FN and FP label pairs).
- evaluation_result: `error` added (wrong labels per image), the classification-only
  true_class/predicted_class columns dropped, prediction JSON rewritten to the shared shape
  {"truth": [...], "predicted": [...], "scores": [...]}.
- evaluation.experiment_id no longer unique.

Revision ID: 5c2d7e1f9a41
Revises: 3fdbfd1cbb23
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "5c2d7e1f9a41"
down_revision: str | None = "3fdbfd1cbb23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}

results = sa.table(
    "evaluation_result",
    sa.column("id", sa.Integer),
    sa.column("evaluation_id", sa.Integer),
    sa.column("image_id", sa.Integer),
    sa.column("subset", sa.String),
    sa.column("prediction", sa.JSON),
    sa.column("score", sa.Float),
    sa.column("correct", sa.Boolean),
    sa.column("error", sa.Float),
    sa.column("true_class", sa.Integer),
    sa.column("predicted_class", sa.Integer),
)
matches = sa.table(
    "evaluation_match",
    sa.column("evaluation_id", sa.Integer),
    sa.column("image_id", sa.Integer),
    sa.column("subset", sa.String),
    sa.column("true_class", sa.Integer),
    sa.column("predicted_class", sa.Integer),
    sa.column("iou", sa.Float),
    sa.column("score", sa.Float),
)


def _label(names: list[str], index: int, score: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "label",
        "class": names[index] if 0 <= index < len(names) else str(index),
        "index": index,
    }
    if score is not None:
        entry["score"] = score
    return entry


def convert(prediction: dict[str, Any], true_class: int | None, predicted_class: int | None):  # type: ignore[no-untyped-def]
    """Old classification prediction JSON → (new JSON, match rows, error)."""
    scores = list(prediction.get("scores") or [])

    def score_of(c: int) -> float | None:
        return scores[c] if 0 <= c < len(scores) else None

    if "label" in prediction:  # single-label
        label = int(prediction["label"]) if predicted_class is None else predicted_class
        target = int(prediction["target"]) if true_class is None else true_class
        names = {label: prediction.get("name"), target: prediction.get("target_name")}
        book = [str(names.get(i) or i) for i in range(max(label, target, len(scores) - 1) + 1)]
        new = {
            "truth": [_label(book, target)],
            "predicted": [_label(book, label, score_of(label))],
            "scores": scores,
        }
        pairs = [(target, label, score_of(label))]
        return new, pairs, float(label != target)
    labels = [int(c) for c in prediction.get("labels", [])]
    targets = [int(c) for c in prediction.get("targets", [])]
    names_by_index = dict(zip(labels, prediction.get("names", []), strict=False))
    names_by_index.update(zip(targets, prediction.get("target_names", []), strict=False))
    size = max([*labels, *targets, len(scores) - 1, 0]) + 1
    book = [str(names_by_index.get(i, i)) for i in range(size)]
    new = {
        "truth": [_label(book, c) for c in targets],
        "predicted": [_label(book, c, score_of(c)) for c in labels],
        "scores": scores,
        "thresholds": prediction.get("thresholds"),
    }
    pairs = [
        (c if c in targets else None, c if c in labels else None, score_of(c))
        for c in sorted(set(labels) | set(targets))
    ]
    return new, pairs, float(len(set(labels) ^ set(targets)))


def upgrade() -> None:
    op.create_table(
        "evaluation_match",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("subset", sa.String(length=16), nullable=False),
        sa.Column("true_class", sa.Integer(), nullable=True),
        sa.Column("predicted_class", sa.Integer(), nullable=True),
        sa.Column("iou", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evaluation_match", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluation_match_cell", ["evaluation_id", "true_class", "predicted_class"]
        )
        batch_op.create_index("ix_evaluation_match_image", ["evaluation_id", "image_id"])
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Float(), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            results.c.id,
            results.c.evaluation_id,
            results.c.image_id,
            results.c.subset,
            results.c.prediction,
            results.c.true_class,
            results.c.predicted_class,
        )
    ).all()
    new_matches: list[dict[str, Any]] = []
    for row_id, evaluation_id, image_id, subset, prediction, true_class, predicted_class in rows:
        prediction = prediction or {}
        if "truth" in prediction:
            continue
        new, pairs, error = convert(prediction, true_class, predicted_class)
        bind.execute(
            results.update().where(results.c.id == row_id).values(prediction=new, error=error)
        )
        new_matches.extend(
            {
                "evaluation_id": evaluation_id,
                "image_id": image_id,
                "subset": subset,
                "true_class": t,
                "predicted_class": p,
                "iou": None,
                "score": s,
            }
            for t, p, s in pairs
        )
    if new_matches:
        op.bulk_insert(matches, new_matches)

    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_result_eval_classes")
        batch_op.drop_column("predicted_class")
        batch_op.drop_column("true_class")
        batch_op.create_index("ix_evaluation_result_eval_image", ["evaluation_id", "image_id"])

    if bind.dialect.name == "sqlite":
        with op.batch_alter_table(
            "evaluation", schema=None, naming_convention=UNIQUE_NAMES
        ) as batch_op:
            batch_op.drop_constraint("uq_evaluation_experiment_id", type_="unique")
            batch_op.create_index("ix_evaluation_experiment_id", ["experiment_id"])
    else:
        op.drop_constraint("evaluation_experiment_id_key", "evaluation", type_="unique")
        op.create_index("ix_evaluation_experiment_id", "evaluation", ["experiment_id"])


def downgrade() -> None:
    bind = op.get_bind()
    # One evaluation per experiment again: keep the newest of each.
    evaluations = sa.table(
        "evaluation", sa.column("id", sa.Integer), sa.column("experiment_id", sa.Integer)
    )
    newest = (
        sa.select(sa.func.max(evaluations.c.id))
        .group_by(evaluations.c.experiment_id)
        .scalar_subquery()
    )
    older = [
        r[0]
        for r in bind.execute(sa.select(evaluations.c.id).where(evaluations.c.id.not_in(newest)))
    ]
    if older:
        bind.execute(results.delete().where(results.c.evaluation_id.in_(older)))
        bind.execute(matches.delete().where(matches.c.evaluation_id.in_(older)))
        bind.execute(evaluations.delete().where(evaluations.c.id.in_(older)))
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table(
            "evaluation", schema=None, naming_convention=UNIQUE_NAMES
        ) as batch_op:
            batch_op.drop_index("ix_evaluation_experiment_id")
            batch_op.create_unique_constraint("uq_evaluation_experiment_id", ["experiment_id"])
    else:
        op.drop_index("ix_evaluation_experiment_id", table_name="evaluation")
        op.create_unique_constraint("evaluation_experiment_id_key", "evaluation", ["experiment_id"])

    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_result_eval_image")
        batch_op.add_column(sa.Column("true_class", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("predicted_class", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_evaluation_result_eval_classes",
            ["evaluation_id", "true_class", "predicted_class"],
            unique=False,
        )
    # Single-label pairs go back to the columns; the prediction JSON keeps its new shape.
    pairs = bind.execute(
        sa.select(
            matches.c.evaluation_id,
            matches.c.image_id,
            matches.c.true_class,
            matches.c.predicted_class,
        )
    ).all()
    counts: dict[tuple[int, int], int] = {}
    for evaluation_id, image_id, _t, _p in pairs:
        counts[(evaluation_id, image_id)] = counts.get((evaluation_id, image_id), 0) + 1
    for evaluation_id, image_id, true_class, predicted_class in pairs:
        if counts[(evaluation_id, image_id)] == 1 and None not in (true_class, predicted_class):
            bind.execute(
                results.update()
                .where(results.c.evaluation_id == evaluation_id, results.c.image_id == image_id)
                .values(true_class=true_class, predicted_class=predicted_class)
            )
    with op.batch_alter_table("evaluation_result", schema=None) as batch_op:
        batch_op.drop_column("error")
    with op.batch_alter_table("evaluation_match", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_match_image")
        batch_op.drop_index("ix_evaluation_match_cell")
    op.drop_table("evaluation_match")
