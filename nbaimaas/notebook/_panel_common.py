"""What every panel shares: a held VBox, CSS classes, and errors shown inside the panel."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any

from ..errors import NbaimaasError

log = logging.getLogger("nbaimaas.panels")


def styled(widget: Any, name: str) -> Any:
    """Give a control its stable CSS class (``nbaimaas-NAME``) for browser tests and styling."""
    widget.add_class(f"nbaimaas-{name}")
    return widget


def find(box: Any, css: str) -> Any:
    """The first widget under ``box`` carrying the CSS class ``css`` (None if there is none)."""
    if css in getattr(box, "_dom_classes", ()):
        return box
    for child in getattr(box, "children", ()):
        hit = find(child, css)
        if hit is not None:
            return hit
    return None


def error_text(exc: BaseException) -> str:
    if isinstance(exc, NbaimaasError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def message_html(text: str, colour: str = "inherit") -> str:
    return f'<span style="color: {colour}">{html.escape(text)}</span>'


class Panel:
    """A class holding a ``VBox`` (``.widget``): composition keeps the widget's traits separate
    from the panel's own state and methods."""

    widget: Any
    error: Any

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    last_error: BaseException | None = None

    def show_error(self, exc: BaseException) -> None:
        """Errors go into the panel's error line (never swallowed); bugs are logged with traceback."""
        self.last_error = exc
        self.error.value = message_html(error_text(exc), "#c62828")
        if not isinstance(exc, NbaimaasError):
            log.error("nbaimaas panel error", exc_info=exc)

    def clear_error(self) -> None:
        self.last_error = None
        self.error.value = ""


def guarded(method: Callable) -> Callable:
    """Run a widget callback, showing any exception in the panel instead of losing it in the
    frontend's log (widget callbacks have no cell to raise into)."""

    @functools.wraps(method)
    def wrapper(self: Panel, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, see show_error
            self.show_error(exc)
            return None

    return wrapper
