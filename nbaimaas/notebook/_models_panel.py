"""ModelsPanel: browse registered versions and metrics, set an alias, delete with confirmation."""

from __future__ import annotations

import ipywidgets as w

from .. import api
from ._panel_common import Panel, guarded, message_html, styled

__all__ = ["ModelsPanel"]


class ModelsPanel(Panel):
    """The registry as a table; Delete asks for a second click ("Confirm delete")."""

    def __init__(self):
        self.table = styled(w.HTML(), "models-table")
        self.version = styled(w.Dropdown(description="version"), "version")
        self.alias = styled(w.Text(placeholder="alias, e.g. prod", description="alias"), "alias")
        self.alias_button = styled(w.Button(description="Set alias", icon="tag"), "alias-button")
        self.delete_button = styled(w.Button(description="Delete", icon="trash", button_style="warning"),
                                    "delete-button")
        self.refresh_button = styled(w.Button(description="Refresh", icon="refresh"), "refresh-button")
        self.status = styled(w.HTML(), "status")
        self.error = styled(w.HTML(), "error")
        self._confirming = False
        self.alias_button.on_click(lambda _b: self.set_alias())
        self.delete_button.on_click(lambda _b: self.delete())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.version.observe(lambda _c: self._reset_confirm(), names="value")
        self.widget = styled(w.VBox([
            self.table, w.HBox([self.version, self.refresh_button]),
            w.HBox([self.alias, self.alias_button]), self.delete_button, self.status, self.error,
        ]), "models-panel")
        self.refresh()

    @guarded
    def refresh(self) -> None:
        """Re-read the registry (keeps the selected version when it still exists)."""
        listing = api.models()
        self.table.value = listing._repr_html_() if listing else "<p>no models registered yet</p>"
        refs = [v.ref for v in listing]
        previous = self.version.value
        self.version.options = refs
        self.version.value = previous if previous in refs else (refs[0] if refs else None)
        self.delete_button.disabled = self.alias_button.disabled = not refs

    @guarded
    def set_alias(self) -> None:
        ref, alias = self.version.value, self.alias.value.strip()
        if not ref or not alias:
            raise ValueError("choose a version and type an alias first")
        self.clear_error()
        version = api.alias(ref, alias)
        self.status.value = message_html(f"{version.name}@{alias} now points at {version.ref}")
        self.refresh()

    @guarded
    def delete(self) -> None:
        """First click asks for confirmation; the second ("Confirm delete") deletes."""
        ref = self.version.value
        if not ref:
            return
        if not self._confirming:
            self._confirming = True
            self.delete_button.description = "Confirm delete"
            self.delete_button.button_style = "danger"
            self.status.value = message_html(f"Click 'Confirm delete' to delete {ref}; this cannot be undone.")
            return
        self._reset_confirm()
        self.clear_error()
        api.delete(ref)
        self.status.value = message_html(f"deleted {ref}")
        self.refresh()

    def _reset_confirm(self) -> None:
        self._confirming = False
        self.delete_button.description = "Delete"
        self.delete_button.button_style = "warning"
