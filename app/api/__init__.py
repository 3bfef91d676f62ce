"""JSON routers under /api. Each module is one resource; handlers parse, call a service, return."""

from fastapi import APIRouter

from app.api import (
    classes,
    dg_reports,
    evaluations,
    experiments,
    exports,
    gate,
    images,
    imports,
    jobs,
    meta,
    predictions,
    projects,
    splits,
    weights,
)

OPENAPI_TAGS = [
    {"name": "meta", "description": "Health, task types and what each supports."},
    {
        "name": "projects",
        "description": "Projects: a name and a task type; everything hangs off one.",
    },
    {
        "name": "imports",
        "description": "Dataset imports: zip upload or server folder, analyze, report; samples.",
    },
    {
        "name": "images",
        "description": "Browse a dataset: image lists, annotations, files, thumbnails, statistics.",
    },
    {
        "name": "classes",
        "description": "A project's classes: rename, recolor, group under a parent (taxonomy).",
    },
    {
        "name": "splits",
        "description": "Immutable train/val/test (and k-fold) assignments with fingerprints.",
    },
    {
        "name": "experiments",
        "description": "Experiments: a training recipe on a split; train, stop, resume, curves.",
    },
    {
        "name": "evaluations",
        "description": "Evaluate a checkpoint: metrics, per-image results, leakage audit.",
    },
    {
        "name": "exports",
        "description": "Model files (ONNX, INT8 ONNX, TorchScript) with a parity report.",
    },
    {
        "name": "dg-reports",
        "description": "Domain-generalisation reports over leave-one-group-out split families.",
    },
    {"name": "predict", "description": "Classify images with an exported model."},
    {
        "name": "weights",
        "description": "Pretrained weights: where they are looked for; adding them offline.",
    },
    {
        "name": "jobs",
        "description": "Background work (imports, training, ...): status, events, cancel.",
    },
]

api_router = APIRouter(prefix="/api")
for module in (
    meta,
    projects,
    imports,
    images,
    classes,
    splits,
    experiments,
    gate,
    evaluations,
    dg_reports,
    exports,
    predictions,
    weights,
    jobs,
):
    api_router.include_router(module.router)
api_router_docs = meta.docs_router
