"""The notebook layer: magics (``%load_ext nbaimaas``), live views, widget panels and plots.

It only parses, calls ``nbaimaas.api`` and renders; it never imports torch or ``nbaimaas.engine``
(checked by tests/notebook/test_layering.py). Submodules are imported on use, so loading the
extension does not pull in ipywidgets or matplotlib.
"""
