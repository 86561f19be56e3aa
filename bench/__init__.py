"""Benchmarks behind every speed claim (DESIGN "Speed"): same work through the engine, a
hand-written PyTorch loop and the peers, in one process, interleaved, medians, ratios.

    python -m bench.run_all          # everything; writes bench/results.json and bench/RESULTS.md
    python -m bench.train            # one benchmark at a time
"""
