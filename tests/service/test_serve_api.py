"""ai.serve() / %aimaas_serve: a service as a child process, and the session switched to it."""

from __future__ import annotations

import numpy as np

import nbaimaas as ai


def test_serve_trains_and_predicts_through_the_service_then_stops(tmp_path):
    served = ai.serve(home=str(tmp_path / "store"))
    try:
        assert served.url.startswith("http://127.0.0.1:")
        assert type(ai.backend()).__name__ == "ServiceClient"
        r = ai.train(data="iris", model="mlp", epochs=2, name="served")
        assert r.model == "served:1"
        pred = ai.predict("served", np.array([[5.1, 3.5, 1.4, 0.2]]))
        assert pred.probabilities.shape == (1, 3)
    finally:
        served.stop()
    assert served.process.poll() is not None
    assert type(ai.backend()).__name__ == "LocalBackend"


def test_serve_magic_connects(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbaimaas")
    served = shell.run_line_magic("aimaas_serve", f"--home {tmp_path / 'store'} -o svc")
    try:
        assert shell.user_ns["svc"] is served
        assert [m.ref for m in shell.run_line_magic("aimaas_models", "")] == []
    finally:
        served.stop()
