"""Plain-word messages for pydantic validation errors, one per field.

Forms show each message beside its field ("Learning rate must be at most 10"); the API keeps
the field name in front of it ("lr: Learning rate must be at most 10") so scripts can tell
which key was wrong. Field names that are not plain words get a label here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

LABELS: dict[str, str] = {
    "lr": "Learning rate",
    "task_type": "Task",
    "split_id": "Split",
    "image_size": "Image size",
    "warmup_epochs": "Warm-up epochs",
    "early_stopping_patience": "Early-stopping patience",
    "accumulate_grad_batches": "Gradient accumulation",
    "num_workers": "Data-loader workers",
    "ema": "EMA of weights",
    "ema_decay": "EMA decay",
    "mixup_alpha": "MixUp alpha",
    "cutmix_alpha": "CutMix alpha",
    "hflip": "Horizontal flip",
    "vflip": "Vertical flip",
    "random_resized_crop": "Random resized crop",
    "page_size": "Page size",
}


def field_label(field: str) -> str:
    """ "augment.rotation" -> "Rotation", "lr" -> "Learning rate", "batch_size" -> "Batch size"."""
    last = field.split(".")[-1]
    return LABELS.get(field) or LABELS.get(last) or last.replace("_", " ").capitalize()


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plain_message(error: dict[str, Any], field: str) -> str:
    """One pydantic error as a sentence about the field, without pydantic's jargon."""
    name = field_label(field) if field else "The form"
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return f"{name} is required"
    sentences = {
        "string_too_short": f"{name} must be at least {ctx.get('min_length')} characters",
        "string_too_long": f"{name} must be at most {ctx.get('max_length')} characters",
        "less_than_equal": f"{name} must be at most {_number(ctx.get('le'))}",
        "less_than": f"{name} must be less than {_number(ctx.get('lt'))}",
        "greater_than_equal": f"{name} must be at least {_number(ctx.get('ge'))}",
        "greater_than": f"{name} must be more than {_number(ctx.get('gt'))}",
        "int_parsing": f"{name} must be a whole number",
        "int_type": f"{name} must be a whole number",
        "int_from_float": f"{name} must be a whole number",
        "float_parsing": f"{name} must be a number",
        "float_type": f"{name} must be a number",
        "bool_parsing": f"{name} must be yes or no",
        "bool_type": f"{name} must be yes or no",
        "literal_error": f"{name} must be one of {ctx.get('expected')}",
        "extra_forbidden": f"{name} is not a setting",
        "finite_number": f"{name} must be a finite number",
    }
    if kind in sentences:
        return sentences[kind]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return message if not field else f"{name}: {message}"


def describe(error: ValidationError) -> list[dict[str, str]]:
    """[{"field", "message", "type"}] with plain messages, in pydantic's order."""
    return describe_errors(error.errors())


def describe_errors(errors: Iterable[Any], blank: str = "") -> list[dict[str, str]]:
    """The same for pydantic error dicts (FastAPI's request errors); `blank` names a field
    with no location."""
    fields = []
    for item in errors:
        loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or blank
        message = plain_message(dict(item), field)
        fields.append({"field": field, "message": message, "type": str(item.get("type", ""))})
    return fields


def api_sentence(fields: list[dict[str, str]]) -> str:
    """ "lr: Learning rate must be at most 10; epochs: Epochs must be at least 1." """
    parts = [f"{f['field']}: {f['message']}" if f["field"] else f["message"] for f in fields]
    return "; ".join(parts) + "."


def form_sentence(fields: list[dict[str, str]]) -> str:
    """ "Name is required." for one field; the messages joined for several."""
    return " ".join(f"{f['message']}." for f in fields)
