"""Split and SplitMember: immutable assignments of images to subsets (and folds)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field


class Split(SQLModel, table=True):
    __tablename__ = "split"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_split_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    strategy: str = Field(max_length=40)
    params: dict[str, Any] = json_field()
    seed: int = 0
    locked: bool = True
    fingerprint: str = Field(default="", max_length=64)
    family: str | None = Field(default=None, max_length=100)
    counts: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()


class SplitMember(SQLModel, table=True):
    __tablename__ = "split_member"
    __table_args__ = (
        # Covering for the grid's subset filter: its count and id set read the index alone.
        Index("ix_split_member_split_subset", "split_id", "subset", "image_id"),
        Index("ix_split_member_image", "image_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    split_id: int = Field(foreign_key="split.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    subset: str = Field(max_length=16)
    fold: int | None = None


# --- request and answer schemas (API and web share them) -----------------------------------

SplitStrategy = Literal[
    "stratified",
    "stratified_kfold",
    "group",
    "group_kfold",
    "leave_one_group_out",
    "predefined",
]
STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
GROUP_STRATEGIES = ("group", "group_kfold", "leave_one_group_out")
KFOLD_STRATEGIES = ("stratified_kfold", "group_kfold")
SubsetName = Literal["train", "val", "test"]
# Hamming distance (bits of the 64-bit perceptual hash) up to which two images count as near
# duplicates: one figure for the dataset statistics, the split guard and the leakage audit.
NEAR_DUPLICATE_BITS = 6
SUBSETS: tuple[str, ...] = get_args(SubsetName)
Ratio = Annotated[float, PydanticField(ge=0, le=1)]
DEFAULT_RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_LOGO_RATIOS = {"train": 0.9, "val": 0.1}


class SplitRequest(BaseModel):
    """What to split and how; `preview` and `create` take the same body."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)] = ""
    strategy: SplitStrategy = "stratified"
    ratios: dict[SubsetName, Ratio] | None = None
    seed: int = PydanticField(42, ge=0, le=2**31 - 1)
    k: int = PydanticField(5, ge=2, le=20, description="Folds (k-fold strategies)")
    test_ratio: float = PydanticField(
        0.0, ge=0, le=0.5, description="Fixed test subset held out before the k folds"
    )
    group_attribute: str | None = PydanticField(
        None, max_length=100, description="Image attribute whose values must not straddle subsets"
    )
    subset_attribute: str = PydanticField(
        "subset", max_length=100, description="Image attribute naming the subset (predefined)"
    )
    keep_out_of_train: list[Annotated[str, StringConstraints(max_length=100)]] | None = (
        PydanticField(
            None,
            max_length=50,
            description="Classes (stratification tokens) whose images never go to train; "
            "None: the task's default (anomaly detection keeps `anomalous` out), [] for none",
        )
    )
    near_duplicates: Literal["group", "report"] = "group"
    near_duplicate_threshold: int = PydanticField(
        NEAR_DUPLICATE_BITS,
        ge=0,
        le=32,
        description="Max Hamming distance of 64-bit perceptual hashes",
    )

    @model_validator(mode="after")
    def _check(self) -> SplitRequest:
        if self.strategy in GROUP_STRATEGIES and not self.group_attribute:
            raise ValueError(
                f"strategy {self.strategy!r} needs group_attribute (an image attribute name)"
            )
        if self.ratios is not None and self.strategy not in KFOLD_STRATEGIES:
            total = sum(self.ratios.values())
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"ratios must sum to 1 (they sum to {total:.4g})")
            if self.ratios.get("train", 0) <= 0:
                raise ValueError("ratios.train must be greater than 0")
            if self.strategy == "leave_one_group_out" and self.ratios.get("test", 0) > 0:
                raise ValueError(
                    "leave_one_group_out holds out one group as test; give only train and val"
                )
        return self

    def effective_ratios(self) -> dict[str, float]:
        if self.ratios is not None:
            return {name: float(value) for name, value in self.ratios.items() if value > 0}
        if self.strategy == "leave_one_group_out":
            return dict(DEFAULT_LOGO_RATIOS)
        return dict(DEFAULT_RATIOS)


class SplitWarning(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class SubsetSummary(BaseModel):
    subset: str
    fold: int | None = None
    count: int
    classes: dict[str, int]


class PlannedSplit(BaseModel):
    name: str
    family: str | None = None
    held_out: str | None = None
    fingerprint: str
    counts: dict[str, Any]
    subsets: list[SubsetSummary]


class DuplicateSummary(BaseModel):
    exact_groups: int = 0
    exact_images: int = 0
    near_pairs: int = 0
    near_mode: str = "group"
    near_threshold: int = NEAR_DUPLICATE_BITS


class SplitPreview(BaseModel):
    strategy: str
    seed: int
    images: int
    classes: list[str]
    splits: list[PlannedSplit]
    warnings: list[SplitWarning]
    duplicates: DuplicateSummary


class SplitBrief(BaseModel):
    id: int
    name: str


class SplitRead(BaseModel):
    id: int
    project_id: int
    name: str
    strategy: str
    params: dict[str, Any]
    seed: int
    locked: bool
    fingerprint: str
    family: str | None
    family_members: list[SplitBrief] = []
    counts: dict[str, Any]
    k: int | None = None
    in_use: bool = False
    created_at: datetime
    subsets: list[SubsetSummary] = []


class SplitVerification(BaseModel):
    split_id: int
    match: bool
    recorded: str
    computed: str
    members: int
