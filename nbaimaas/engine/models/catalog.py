"""The architecture catalog: code by name, timm-style.

Each architecture is a builder ``build(info, *, option=default, ...) -> nn.Module`` registered
into the explicit ``ARCHITECTURES`` object. The builder's keyword-only parameters *are* its
options: their defaults are the documented defaults, and ``create_model`` checks a spec's options
against them (unknown names, wrong types) before building, so a typo is one clear line instead of
a ``TypeError`` from deep inside torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ...errors import IncompatibleError, SpecError, unknown_name
from ...results import ArchInfo, Listing
from ...specs import ModelSpec
from ..catalog import NamedCatalog
from ..types import MODALITIES, TASKS, DataInfo

Builder = Callable[..., nn.Module]

# The one architecture built from spec.layers rather than from options (see layers.py).
LAYERS_ARCH = "layers"


@dataclass(frozen=True)
class ArchEntry:
    name: str
    build: Builder
    family: str
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]
    description: str

    def fits(self, info: DataInfo) -> bool:
        return info.modality in self.modalities and info.task in self.tasks

    def options(self) -> dict:
        """The builder's keyword-only parameters and their defaults."""
        params = inspect.signature(self.build).parameters.values()
        injected = {"layers"} if self.name == LAYERS_ARCH else set()
        return {p.name: p.default for p in params
                if p.kind is p.KEYWORD_ONLY and p.name not in injected}

    def arch_info(self) -> ArchInfo:
        return ArchInfo(self.name, self.family, list(self.modalities), list(self.tasks),
                        self.description)


class Catalog(NamedCatalog[ArchEntry]):
    """An explicit registry of architectures (no import-time magic beyond ``@register``)."""

    def __init__(self, kind: str = "architecture"):
        super().__init__(kind)

    def register(self, name: str, *, family: str, modalities, tasks, description: str):
        for m in modalities:
            if m not in MODALITIES:
                raise ValueError(f"{name}: unknown modality {m!r}")
        for t in tasks:
            if t not in TASKS:
                raise ValueError(f"{name}: unknown task {t!r}")

        def decorator(build: Builder) -> Builder:
            self.add(name, ArchEntry(name, build, family, tuple(modalities), tuple(tasks), description))
            return build

        return decorator


ARCHITECTURES = Catalog("architecture")


def list_architectures(task: str | None = None, modality: str | None = None) -> list[ArchInfo]:
    """Architectures that fit a task and/or modality (all when both are None)."""
    if task is not None and task not in TASKS:
        raise unknown_name("task", task, TASKS)
    if modality is not None and modality not in MODALITIES:
        raise unknown_name("modality", modality, MODALITIES)
    rows = [e.arch_info() for e in ARCHITECTURES
            if (task is None or task in e.tasks) and (modality is None or modality in e.modalities)]
    return Listing(rows, caption="architectures")


def create_model(spec: ModelSpec, info: DataInfo) -> nn.Module:
    """Build ``spec.arch`` sized for ``info``; the same (spec, info) always gives the same shapes,
    so a stored state_dict loads into a fresh build."""
    entry = ARCHITECTURES.get(spec.arch)
    _check_fits(entry, info)
    options = _check_options(entry, spec.options)
    if entry.name == LAYERS_ARCH:
        options["layers"] = spec.layers
    elif spec.layers is not None:
        raise SpecError(f"'layers' is only used with arch 'layers', not '{spec.arch}'")
    return entry.build(info, **options)


def _check_fits(entry: ArchEntry, info: DataInfo) -> None:
    if entry.fits(info):
        return
    fitting = [e.name for e in ARCHITECTURES if e.fits(info) and e.family != "custom"]
    hint = f" — try: {', '.join(fitting)}" if fitting else ""
    raise IncompatibleError(
        f"architecture '{entry.name}' fits {'/'.join(entry.modalities)} data for "
        f"{'/'.join(entry.tasks)}; dataset '{info.name}' is {info.modality} {info.task}{hint}")


def _check_options(entry: ArchEntry, given: dict) -> dict:
    valid = entry.options()
    for key, value in given.items():
        if key not in valid:
            err = unknown_name(f"option for architecture '{entry.name}'", key, valid)
            raise SpecError(err.message.replace("; known:", "; valid options:"))
        _check_type(entry.name, key, value, valid[key])
    return dict(given)


def _check_type(arch: str, key: str, value, default) -> None:
    """Options come from JSON, so compare with the default's JSON kind, not its exact type."""
    if default is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        # a list of sizes may also be given as one size: hidden=64 means [64]
        ok = isinstance(value, (list, tuple, int)) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        raise SpecError(f"option '{key}' of architecture '{arch}' must be like {default!r}, "
                        f"got {value!r}")
