"""Validation errors in plain words, one per field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from app.validation import api_sentence, describe, form_sentence


class Form(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    lr: float = Field(0.1, gt=0, le=10)
    epochs: int = Field(1, ge=1)
    batch_size: int = 1


def _fields(**data: object) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Form.model_validate(data)
    return describe(caught.value)


def test_each_error_is_a_sentence_about_its_field() -> None:
    fields = _fields(name="", lr=20.0, epochs=0, batch_size="many")
    assert [(f["field"], f["message"]) for f in fields] == [
        ("name", "Name is required"),
        ("lr", "Learning rate must be at most 10"),
        ("epochs", "Epochs must be at least 1"),
        ("batch_size", "Batch size must be a whole number"),
    ]
    assert form_sentence(fields[:1]) == "Name is required."
    assert api_sentence(fields[1:2]) == "lr: Learning rate must be at most 10."


def test_missing_too_long_and_exclusive_bounds() -> None:
    assert _fields()[0]["message"] == "Name is required"
    assert _fields(name="toolong")[0]["message"] == "Name must be at most 5 characters"
    assert _fields(name="ok", lr=0)[0]["message"] == "Learning rate must be more than 0"
