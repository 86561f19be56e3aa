"""The data step of the engine: built-in and user data -> split, cleaned, preprocessed tensors.

    prepare(spec, inline=None) -> Prepared      tensors per engine/types.py + fitted preprocessor
    describe(spec, inline=None) -> dict         DataInfo + a few raw examples (plain Python/numpy)
    list_datasets() -> Listing[DatasetInfo]     the built-in catalog
    load_preprocessor(meta, tensors)            rebuild what ``preprocessor.state()`` returned
    DATASETS                                    the catalog (``@DATASETS.register(...)``)

Every preprocessor has ``transform(raw)``, ``state()`` and ``inverse_targets(y)`` (series and
regression tables unscale; the others return y unchanged).
"""

from __future__ import annotations

from . import builtin as _builtin  # noqa: F401  (registers the built-in datasets)
from .catalog import DATASETS, Catalog
from .prepare import describe, list_datasets, load_preprocessor, prepare

__all__ = ["prepare", "describe", "list_datasets", "load_preprocessor", "DATASETS", "Catalog"]
