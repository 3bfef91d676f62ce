"""HTML pages and HTMX partials. Pages call app.services directly, like the API does."""

from fastapi import APIRouter

from app.web import auth, evaluation, jobs, projects, training

web_router = APIRouter(include_in_schema=False)
for module in (auth, projects, training, evaluation, jobs):
    web_router.include_router(module.router)
