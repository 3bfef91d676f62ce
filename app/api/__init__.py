"""JSON routers under /api. Each module is one resource; handlers parse, call a service, return."""

from fastapi import APIRouter

from app.api import experiments, exports, jobs, meta, predictions, projects

OPENAPI_TAGS = [
    {"name": "meta", "description": "Health, task types and what each supports."},
    {
        "name": "projects",
        "description": "Projects: a name and a task type; everything hangs off one.",
    },
    {
        "name": "experiments",
        "description": "Experiments: a training recipe on a split; train, stop, resume, curves.",
    },
    {
        "name": "jobs",
        "description": "Background work (imports, training, ...): status, events, cancel.",
    },
    {
        "name": "exports",
        "description": "Model files (ONNX, INT8 ONNX, TorchScript) with a parity report.",
    },
    {"name": "predict", "description": "Classify images with an exported model."},
]

api_router = APIRouter(prefix="/api")
for module in (meta, projects, experiments, jobs, exports, predictions):
    api_router.include_router(module.router)
