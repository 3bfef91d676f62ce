"""Behaviour, one module per resource. Never imports fastapi/starlette; raises StudioError."""
