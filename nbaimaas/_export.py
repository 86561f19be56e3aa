"""Run notebooks headless and export them as ONE self-contained HTML file (widgets included).

    python -m nbaimaas._export quickstart [--out out/quickstart.html]   # the README's "run" command
    python -m nbaimaas._export refresh notebooks/*.ipynb                 # re-execute, save in place
    python -m nbaimaas._export html NOTEBOOK.ipynb --out NOTEBOOK.html   # export an executed one

Why a custom exporter: nbclient stores the final widget state in the notebook, but nbconvert's HTML
loads the widget renderer (``@jupyter-widgets/html-manager``), require.js, MathJax and Mermaid from
CDNs, so offline the widgets are blank. Here the renderer (``_static/html-manager-embed.js``, the
html-manager's standalone ``embed.js`` build, BSD-3-Clause, see ``_static/README.md``) is inlined
into the page and every CDN script is left out; plots are PNGs inlined as data URIs already.

This is tooling, not a layer of the library: it imports nbclient/nbconvert lazily and never torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["execute_notebook", "export_html", "quickstart", "refresh", "widget_js", "final_metrics",
           "FINAL_METRICS_TAG", "main"]

STATIC = Path(__file__).with_name("_static")
WIDGET_JS = STATIC / "html-manager-embed.js"
FINAL_METRICS_TAG = "nbaimaas-final-metrics"
QUICKSTART = "01-quickstart.ipynb"

# A child of nbconvert's "lab" template: the widget renderer inlined, every CDN <script> dropped.
_TEMPLATE_NAME = "nbaimaas_offline.html.j2"
_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}
{%- if "widgets" in nb.metadata -%}
<script type="text/plain" id="nbaimaas-widget-renderer">
{{ resources.nbaimaas_widget_js }}
</script>
<script type="text/javascript">
/* Run the inlined renderer from a blob: URL. Its webpack runtime derives a "public path" from the
   running script's src and throws for an inline script without one. */
(function () {
  var code = document.getElementById("nbaimaas-widget-renderer").textContent;
  var script = document.createElement("script");
  script.src = URL.createObjectURL(new Blob([code], {type: "text/javascript"}));
  document.head.appendChild(script);
}());
</script>
{%- endif -%}
{% endblock jupyter_widgets %}
"""


def widget_js() -> str:
    """The vendored widget renderer, safe to inline inside a <script> element."""
    return WIDGET_JS.read_text(encoding="utf-8").replace("</script", "<\\/script")


# -- executing --------------------------------------------------------------------------------
def execute_notebook(nb: Any, cwd: str | os.PathLike | None = None, timeout: int = 900,
                     kernel_name: str = "python3", allow_errors: bool = False):
    """Execute a notebook (a path or a NotebookNode) top to bottom in a fresh kernel.

    Returns the executed NotebookNode with outputs and the final widget state in its metadata.
    No per-cell timing metadata is recorded, so re-executed notebooks diff only where outputs do.
    """
    import nbformat
    from nbclient import NotebookClient

    if isinstance(nb, (str, os.PathLike)):
        cwd = cwd if cwd is not None else Path(nb).parent
        nb = nbformat.read(str(nb), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                            record_timing=False, store_widget_state=True,
                            resources={"metadata": {"path": str(cwd or os.getcwd())}})
    client.execute()
    return nb


def refresh(paths: list[str], timeout: int = 900) -> None:
    """Re-execute notebooks and save them in place (the committed outputs nbval compares)."""
    import time

    import nbformat

    for path in paths:
        start = time.perf_counter()
        nb = execute_notebook(path, timeout=timeout)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"{path}: executed in {time.perf_counter() - start:.1f} s", flush=True)


# -- exporting --------------------------------------------------------------------------------
def export_html(nb: Any, out: str | os.PathLike | None = None, title: str | None = None) -> str:
    """One self-contained HTML page of an executed notebook; written to ``out`` when given."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if isinstance(nb, (str, os.PathLike)):
        nb = nbformat.read(str(nb), as_version=4)
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                            embed_images=True)
    exporter.template_file = _TEMPLATE_NAME
    resources = {"nbaimaas_widget_js": widget_js(), "metadata": {"name": title or nb.metadata.get("title", "notebook")}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
    return body


def final_metrics(nb: Any) -> str:
    """The text the cell tagged ``nbaimaas-final-metrics`` printed (empty if there is none)."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code" and FINAL_METRICS_TAG in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    lines.append(output.get("text", ""))
                elif "data" in output and "text/plain" in output["data"]:
                    lines.append(output["data"]["text/plain"])
    return "".join(lines).strip()


def _find_quickstart() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base / "notebooks" / QUICKSTART
        if candidate.exists():
            return candidate
    raise SystemExit(f"cannot find notebooks/{QUICKSTART}; run from the repository root or pass --notebook")


def quickstart(notebook: str | os.PathLike | None = None, out: str | os.PathLike = "out/quickstart.html",
               timeout: int = 900) -> tuple[Path, str]:
    """Execute the quickstart in a temporary copy and write it as one offline HTML page.

    The committed notebook is never modified. Returns (html path, the final metrics text). When a
    cell fails, the page is still written (with the error in it) and CellExecutionError is raised.
    """
    from nbclient.exceptions import CellExecutionError

    src = Path(notebook) if notebook else _find_quickstart()
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="nbaimaas-quickstart-") as tmp:
        copy = Path(tmp) / src.name
        shutil.copyfile(src, copy)
        import nbformat

        nb = nbformat.read(str(copy), as_version=4)
        try:
            execute_notebook(nb, cwd=tmp, timeout=timeout)
        except CellExecutionError:
            export_html(nb, out)
            raise
    export_html(nb, out)
    return out, final_metrics(nb)


# -- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbaimaas._export", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="execute notebooks/01-quickstart.ipynb and write one offline HTML page")
    q.add_argument("--notebook", help=f"the notebook to run (default notebooks/{QUICKSTART})")
    q.add_argument("--out", default="out/quickstart.html")
    q.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    r = sub.add_parser("refresh", help="re-execute notebooks and save their outputs in place")
    r.add_argument("notebooks", nargs="+")
    r.add_argument("--timeout", type=int, default=900)
    h = sub.add_parser("html", help="export an executed notebook as one offline HTML page")
    h.add_argument("notebook")
    h.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    if args.command == "refresh":
        refresh(args.notebooks, timeout=args.timeout)
    elif args.command == "html":
        print(Path(export_html(args.notebook, args.out) and args.out).resolve())
    else:
        from nbclient.exceptions import CellExecutionError

        try:
            path, metrics = quickstart(args.notebook, args.out, args.timeout)
        except CellExecutionError as e:
            print(f"the quickstart failed; the page with the error is {Path(args.out).resolve()}\n{e}",
                  file=sys.stderr)
            return 1
        print(f"HTML: {path}")
        print(f"final metrics: {metrics or '(the notebook printed none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
