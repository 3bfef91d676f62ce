"""HTML pages and HTMX partials. Pages call app.services directly, like the API does."""

from fastapi import APIRouter

from app.web import auth, exports, jobs, projects, training

web_router = APIRouter(include_in_schema=False)
for module in (auth, projects, training, exports, jobs):
    web_router.include_router(module.router)
