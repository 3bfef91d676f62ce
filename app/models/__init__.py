"""All tables, imported here so SQLModel.metadata (and Alembic) sees every one."""

from app.models.common import Page
from app.models.dataset_import import DatasetImport
from app.models.dg_report import DGReport
from app.models.evaluation import Evaluation, EvaluationMatch, EvaluationResult
from app.models.experiment import Experiment, MetricPoint
from app.models.export import Export, ExportCreate, ExportRead
from app.models.image import (
    ANNOTATION_KINDS,
    UNLABELLED_SORT,
    Annotation,
    BrowseVersion,
    Image,
    ImageAttribute,
)
from app.models.job import (
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventRead,
    JobQueue,
    JobRead,
    JobStatus,
)
from app.models.project import (
    LabelClass,
    Project,
    ProjectCounts,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
)
from app.models.split import Split, SplitMember

__all__ = [
    "ANNOTATION_KINDS",
    "TERMINAL_STATUSES",
    "UNLABELLED_SORT",
    "Annotation",
    "BrowseVersion",
    "DGReport",
    "DatasetImport",
    "Evaluation",
    "EvaluationMatch",
    "EvaluationResult",
    "Experiment",
    "Export",
    "ExportCreate",
    "ExportRead",
    "Image",
    "ImageAttribute",
    "Job",
    "JobEvent",
    "JobEventRead",
    "JobQueue",
    "JobRead",
    "JobStatus",
    "LabelClass",
    "MetricPoint",
    "Page",
    "Project",
    "ProjectCounts",
    "ProjectCreate",
    "ProjectRead",
    "ProjectUpdate",
    "Split",
    "SplitMember",
]
