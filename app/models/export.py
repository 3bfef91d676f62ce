"""Export: a model file made from a checkpoint, with its parity report and metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class Export(SQLModel, table=True):
    __tablename__ = "export"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", ondelete="CASCADE", index=True)
    checkpoint: str = Field(max_length=40)
    format: str = Field(max_length=20)
    options: dict[str, Any] = json_field()
    status: str = Field(default="queued", max_length=20)
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    path: str | None = Field(default=None, max_length=500)
    bytes: int | None = None
    valid: bool | None = None
    validation: dict[str, Any] = json_field()
    # Named `meta` because SQLModel reserves `metadata`; the API calls it "metadata".
    meta: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field()


class ExportCreate(BaseModel):
    """POST body: which checkpoint of the experiment, in which format, with which opset."""

    format: str = PydanticField(
        default="onnx", max_length=20, description="onnx | onnx_int8 | torchscript"
    )
    checkpoint: str = PydanticField(default="best", max_length=40, description="best | last")
    opset: int | None = PydanticField(default=None, description="ONNX opset (13-20); default 17")


class ExportRead(BaseModel):
    id: int
    experiment_id: int
    project_id: int
    checkpoint: str
    format: str
    options: dict[str, Any]
    status: str
    job_id: int | None
    bytes: int | None
    valid: bool | None
    validation: dict[str, Any]
    metadata: dict[str, Any]
    file_name: str
    download_url: str | None
    created_at: datetime
    finished_at: datetime | None
