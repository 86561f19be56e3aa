"""Widget panels for the notebook: ``TrainPanel``, ``PredictPanel`` and ``ModelsPanel``.

Each is a class holding an ipywidgets ``VBox`` (``panel.widget``) and shows itself when it is a
cell's value. Panels call ``nbaimaas.api`` only (never torch), update widget *values* (progress,
PNG bytes of an Image, label text) instead of printing into Output widgets, give every control a
stable CSS class ``nbaimaas-...``, and show errors inside the panel.
"""

from __future__ import annotations

from ._models_panel import ModelsPanel
from ._predict_panel import PredictPanel
from ._train_panel import TrainPanel

__all__ = ["TrainPanel", "PredictPanel", "ModelsPanel"]
