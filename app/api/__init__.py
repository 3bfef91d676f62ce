"""JSON routers under /api. Each module is one resource; handlers parse, call a service, return."""

from fastapi import APIRouter

from app.api import evaluations, experiments, jobs, meta, projects

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
        "name": "evaluations",
        "description": "Evaluate an experiment's checkpoint: metrics, per-image results, "
        "leakage audit.",
    },
]

api_router = APIRouter(prefix="/api")
for module in (meta, projects, experiments, jobs, evaluations):
    api_router.include_router(module.router)
