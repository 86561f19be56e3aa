"""Run every CPU benchmark and write bench/results.json and bench/RESULTS.md.

    python -m bench.run_all [--quick]          # or: python bench/run_all.py

The GPU benchmark is separate (``python bench/gpu.py --json bench/gpu_results.json`` on a CUDA
machine); when bench/gpu_results.json exists its table goes into RESULTS.md with its date and
device, otherwise RESULTS.md says it has not been run on a GPU yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402 - sets one thread per process before torch loads

HERE = Path(__file__).resolve().parent


def _section(name: str, fn, **kw) -> dict:
    print(f"\n== {name} ==", flush=True)
    t = time.perf_counter()
    try:
        out = fn(**kw)
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others
        traceback.print_exc()
        out = {"error": f"{type(exc).__name__}: {exc}", "table": f"failed: {type(exc).__name__}: {exc}"}
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(out["table"], flush=True)
    return out


def run(quick: bool = False) -> dict:
    from bench import import_time, predict, service, train

    report = {"machine": common.machine(), "quick": quick}
    report["import_time"] = _section("start-up", import_time.run, runs=3 if quick else 7)
    report["train"] = _section("training", train.run, reps=2 if quick else 7)
    report["predict"] = _section("prediction in process", predict.run, calls=50 if quick else 300,
                                 rounds=2 if quick else 5)
    report["service"] = _section("prediction service", service.run, seconds=1.0 if quick else 2.0,
                                 rounds=1 if quick else 3)
    gpu = HERE / "gpu_results.json"
    report["gpu"] = json.loads(gpu.read_text()) if gpu.exists() else None
    if report["gpu"] and report["gpu"].get("smoke"):
        report["gpu"] = None        # a CPU smoke run's figures are not GPU results
    return report


def markdown(report: dict) -> str:
    m = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    load = m.get("load_average")
    out = [
        "# Benchmark results",
        "",
        "Written by `python -m bench.run_all` (do not edit by hand; rerun it).",
        "",
        f"- date: {m['date']}" + (" (quick run: smoke figures, not results)" if report.get("quick") else ""),
        f"- machine: {m['processor']}, {m['cpus']} CPUs, {m['platform']}"
        + (f"; load average at start {load[0]} {load[1]} {load[2]}" if load else ""),
        f"- python {m['python']}; {versions}",
        "- one torch thread; ratios are medians of interleaved rounds, paired per round",
    ]
    if load and m["cpus"] and load[0] > m["cpus"]:
        out.append(f"- the machine was shared (load {load[0]} on {m['cpus']} CPUs): wall-clock figures move by tens of "
                   "per cent between rounds (every round is in results.json); the ratios and the best-epoch "
                   "rows are the steadier figures")
    out += [
        "",
        "## Training (CPU): samples/s and ratio to the hand-written loop",
        "",
        "Same model (create_model, same seeded init), same data, Adam, batch 64, validation every epoch.",
        "`engine` is `ai.train` with its progress events, validation and checkpoints, timed by the run;",
        "`engine+prep` is the same call timed by the caller, data preparation included.",
        "",
        report["train"]["table"],
        "",
        "## Prediction in process: latency per call",
        "",
        report["predict"]["table"],
        "",
        "## Prediction service under loopback load",
        "",
        report["service"]["table"],
        "",
        "## Start-up",
        "",
        report["import_time"]["table"],
        "",
        "## GPU",
        "",
    ]
    gpu = report.get("gpu")
    if gpu:
        out += [f"{gpu['device']}, torch {gpu['torch']}, {gpu['date']} (`python bench/gpu.py`, "
                f"{gpu['seconds']:.0f} s): samples/s, ratio to the whole-step CUDA-graph loop", "", gpu["table"]]
    else:
        out += ["`bench/gpu.py` has not been run on a GPU yet. On a CUDA machine:",
                "`python bench/gpu.py --json bench/gpu_results.json`, then rerun `python -m bench.run_all`.",
                "On this project's lent GPU machine (no registry): `bash .ci/gpu-prepare` here, then "
                "`bash .ci/gpu-check` there in one call carrying `.gpu-wheels`; it runs the CUDA tests "
                "and the benchmark and leaves `gpu_results.json` in `$OUT`. `python bench/gpu.py "
                "--smoke` (a test runs it) checks the script on the CPU."]
    return "\n".join(out) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few repetitions: a smoke test of the benchmarks")
    p.add_argument("--out", default=str(HERE), help="folder for results.json and RESULTS.md")
    p.add_argument("--markdown-only", action="store_true", help="rewrite RESULTS.md from results.json")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.markdown_only:
        report = json.loads((out / "results.json").read_text())
        gpu = HERE / "gpu_results.json"
        report["gpu"] = json.loads(gpu.read_text()) if gpu.exists() else report.get("gpu")
        (out / "RESULTS.md").write_text(markdown(report))
        return report
    report = run(a.quick)
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "RESULTS.md").write_text(markdown(report))
    print(f"\nwrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    return report


if __name__ == "__main__":
    main()
