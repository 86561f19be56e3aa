"""The HTTP routes, one module per resource; ``ROUTERS`` is what the app factory includes."""

from __future__ import annotations

from .catalog import router as catalog
from .jobs import router as jobs
from .models import router as models
from .predict import router as predict

# predict before models: both live under /v1/models/{ref}/...
ROUTERS = (catalog, jobs, predict, models)

__all__ = ["ROUTERS"]
