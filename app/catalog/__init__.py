"""Model catalog as data for the web process; the torch half is workers/ml/backbones.py."""

from app.catalog.models import ModelSpec, backbones_with, get_model, list_models

__all__ = ["ModelSpec", "backbones_with", "get_model", "list_models"]
