"""JSON routers under /api. Each module is one resource; handlers parse, call a service, return."""

from fastapi import APIRouter

from app.api import jobs, meta, projects, splits

OPENAPI_TAGS = [
    {"name": "meta", "description": "Health, task types and what each supports."},
    {
        "name": "projects",
        "description": "Projects: a name and a task type; everything hangs off one.",
    },
    {
        "name": "splits",
        "description": "Immutable train/val/test (and k-fold) assignments with fingerprints.",
    },
    {
        "name": "jobs",
        "description": "Background work (imports, training, ...): status, events, cancel.",
    },
]

api_router = APIRouter(prefix="/api")
for module in (meta, projects, splits, jobs):
    api_router.include_router(module.router)
