"""In-process prediction latency: ``ai.predict`` (raw inputs in, labels and probabilities out,
the model's own preprocessing applied) against calling the network on a ready tensor.

Both sides run the same registered model (LeNet-5 on digits at 28x28, and the MLP on digits),
one torch thread, batch 1 and 64; calls are interleaved in rounds and the table shows median
microseconds per call and the ratio ai.predict / raw call (1.00 = no overhead).

    python -m bench.predict [--calls 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import one_thread, private_home, report, table  # noqa: E402

MODELS = {"lenet": ("lenet", {"image_size": 28}), "mlp": ("mlp", {})}
TITLES = {"lenet": "LeNet-5, digits at 28x28", "mlp": "MLP 64-128-10, digits"}


def _register(key: str) -> str:
    import nbaimaas as ai

    arch, fields = MODELS[key]
    r = ai.train(data="digits", model=arch, epochs=1, name=f"bench-{key}", **fields)
    return r.model


def _time_calls(fn, calls: int) -> float:
    """Median seconds of one call over ``calls`` calls (each timed on its own)."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(key: str, calls: int, rounds: int) -> list[dict]:
    import numpy as np
    import torch

    import nbaimaas as ai

    ref = _register(key)
    servable = ai.backend().cache.get(ref)
    raw = ai.sample("digits", n=64, **MODELS[key][1])["inputs"]       # raw 8x8 digit images
    rows = []
    for batch in (1, 64):
        inputs = np.asarray(raw[:batch])
        x = servable.preprocessor.transform(inputs)                    # what the network sees
        model = servable.model.eval()

        def raw_call():
            with torch.no_grad():
                model(x)

        def api_call():
            ai.predict(ref, inputs)

        api, direct = [], []
        for _ in range(rounds + 1):                                    # the first round warms up
            api.append(_time_calls(api_call, calls))
            direct.append(_time_calls(raw_call, calls))
        api, direct = statistics.median(api[1:]), statistics.median(direct[1:])
        rows.append({"model": key, "batch": batch, "ai_predict_us": api * 1e6, "raw_model_us": direct * 1e6,
                     "overhead_us": (api - direct) * 1e6, "ratio": api / direct})
    return rows


def render(rows: list[dict]) -> str:
    return table(["work", "batch", "ai.predict (us)", "raw model call (us)", "overhead (us)", "ratio"],
                 [[TITLES[r["model"]], r["batch"], f"{r['ai_predict_us']:,.0f}", f"{r['raw_model_us']:,.0f}",
                   f"{r['overhead_us']:,.0f}", f"{r['ratio']:.2f}"] for r in rows])


def run(calls: int = 300, rounds: int = 5) -> dict:
    private_home()
    one_thread()
    rows = [r for key in MODELS for r in bench_model(key, calls, rounds)]
    return {"rows": rows, "table": render(rows),
            "note": "ai.predict includes resolving the reference, preprocessing raw inputs, softmax and labels"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json")
    a = p.parse_args(argv)
    out = run(a.calls, a.rounds)
    return report(out, "in-process prediction latency, median per call (1 torch thread)", a.json)


if __name__ == "__main__":
    main()
