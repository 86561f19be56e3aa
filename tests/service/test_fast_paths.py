"""The prediction fast paths stay correct: kept resolutions follow other processes' registry
changes, the batcher waits only for requests it knows are coming, and still batches under load.

Every assertion is on the components' own counters and decisions, never on wall-clock timings.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nbaimaas.engine.predict import ModelCache
from nbaimaas.engine.registry import Registry
from nbaimaas.errors import NotFoundError
from nbaimaas.service.batcher import MicroBatcher

ROOT = Path(__file__).resolve().parents[2]


def _register(reg: Registry, name: str = "m"):
    return reg.register(name, weights={"w": torch.zeros(2)}, spec={"model": {"arch": "mlp"}},
                        info={"task": "classification", "classes": ["a", "b"]})


def _in_other_process(root: Path, code: str) -> None:
    """Run registry code in a separate interpreter, as a training worker or a client would."""
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from nbaimaas.engine.registry import Registry
        reg = Registry({str(root)!r})
        def register(name="m"):
            return reg.register(name, weights={{"w": torch.zeros(2)}}, spec={{"model": {{"arch": "mlp"}}}},
                                info={{"task": "classification", "classes": ["a", "b"]}})
    """) + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_kept_resolutions_follow_other_processes(tmp_path):
    reg = Registry(tmp_path)
    _register(reg)
    cache = ModelCache(Registry(tmp_path))

    assert cache.resolve("m").ref == "m:1"
    done = cache.resolutions
    assert cache.resolve("m").ref == "m:1" and cache.resolved("m").ref == "m:1"
    assert cache.resolutions == done            # kept: no SQLite query while nothing changed

    _in_other_process(tmp_path, "register()")                           # m:2 from elsewhere
    assert cache.resolved("m") is None          # the change is seen before anything is served
    assert cache.resolve("m").ref == "m:2"
    assert cache.resolve("m:1").ref == "m:1"

    _in_other_process(tmp_path, "reg.set_alias('m:1', 'prod')")
    assert cache.resolve("m@prod").ref == "m:1"
    _in_other_process(tmp_path, "reg.set_alias('m:2', 'prod')")         # the alias moves
    assert cache.resolve("m@prod").ref == "m:2"

    _in_other_process(tmp_path, "reg.delete('m:2')")                   # newest deleted
    assert cache.resolve("m").ref == "m:1"
    with pytest.raises(NotFoundError):
        cache.resolve("m:2")                    # an exact ref is gone once deleted
    with pytest.raises(NotFoundError):
        cache.resolve("m@prod")                 # its alias went with it
    assert cache.resolved("m:2") is None


def test_kept_resolutions_follow_this_process_too(tmp_path):
    reg = Registry(tmp_path)
    _register(reg)
    cache = ModelCache(reg)
    assert cache.resolve("m").ref == "m:1"
    _register(reg)                              # another connection of this same process
    assert cache.resolve("m").ref == "m:2"
    reg.delete("m:1")
    with pytest.raises(NotFoundError):
        cache.resolve("m:1")


# -- the batcher ---------------------------------------------------------------------------------

class _Recorder:
    """A run_batch that records batch sizes and may hold the first batch until released."""

    def __init__(self, hold_first: bool = False):
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items):
        self.sizes.append(len(items))
        self.started.set()
        self.release.wait(30)
        return [item * 10 for item in items]


def test_one_request_at_a_time_never_waits():
    run = _Recorder()

    async def main():
        batcher = MicroBatcher(run, max_wait=10.0, inline_s=1.0)
        results = [await batcher.submit(i) for i in range(8)]
        return batcher, results

    batcher, results = asyncio.run(main())
    assert results == [i * 10 for i in range(8)]
    assert batcher.waits == 0                   # no request was ever known to be coming
    assert batcher.batches == 8 and batcher.largest == 1 and run.sizes == [1] * 8
    # after the first pass showed the model fast, lone requests ran on the loop itself
    assert batcher.inline == 7


@pytest.mark.parametrize("inline_s, on_loop", [(1.0, True), (0.0, False)])
def test_batches_of_a_size_known_to_be_fast_run_on_the_loop(inline_s, on_loop):
    threads: list[int] = []

    def run(items):
        threads.append(threading.get_ident())
        return [item * 10 for item in items]

    async def main():
        batcher = MicroBatcher(run, max_wait=0.0, inline_s=inline_s)
        answers = [await asyncio.gather(*(batcher.submit(i) for i in range(5))) for _ in range(2)]
        return batcher, answers, threading.get_ident()

    batcher, answers, loop_thread = asyncio.run(main())
    assert answers == [[i * 10 for i in range(5)]] * 2
    assert batcher.batches == 2 and batcher.largest == 5
    assert set(batcher.cost_s) == {(5).bit_length()}     # timed per bucket of rows
    # the first batch of 5 is timed on the inference thread; the second runs on the loop only
    # when that pass took less than inline_s
    assert threads[0] != loop_thread
    assert (threads[1] == loop_thread) is on_loop and batcher.inline == int(on_loop)


@pytest.mark.parametrize("slow_passes, where", [
    # a pass that sleeps (a GPU sync, say) costs the thread no CPU but blocks the loop: after
    # three slow passes on the loop in a row, that size stays on the thread
    (set(range(1, 8)), "ends on the thread"),
    # one slow pass on the loop (the OS preempted it) is forgiven
    ({1}, "TLLLLLLL"),
])
def test_a_size_that_keeps_blocking_the_loop_goes_back_to_the_thread(slow_passes, where):
    import time

    passes: list[int] = []

    def run(items):
        passes.append(threading.get_ident())
        if len(passes) - 1 in slow_passes:
            time.sleep(0.02)                     # wall time, no CPU time
        return items

    async def main():
        batcher = MicroBatcher(run, max_wait=0.0, inline_s=0.01)
        for i in range(8):
            assert await batcher.submit(i) == i
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    seen = "".join("L" if t == loop_thread else "T" for t in passes)
    if where == "ends on the thread":
        assert seen.count("L") == 3 and seen.endswith("TTT"), seen
    else:
        assert seen == where


def test_waits_only_for_announced_requests():
    run = _Recorder()

    async def main():
        batcher = MicroBatcher(run, max_wait=30.0)
        with batcher.expect() as coming:        # B's body is still arriving
            a = asyncio.ensure_future(batcher.submit("a"))
            for _ in range(5):
                await asyncio.sleep(0)
            assert batcher.waits == 1 and not a.done()   # A waits for B, not for a clock
            b = asyncio.ensure_future(coming.submit("b"))
            return batcher, await a, await b

    batcher, a, b = asyncio.run(main())
    assert (a, b) == ("a" * 10, "b" * 10)
    assert run.sizes == [2] and batcher.waits == 1


def test_a_request_that_gives_up_stops_the_wait():
    run = _Recorder()

    async def main():
        batcher = MicroBatcher(run, max_wait=30.0)
        with batcher.expect():
            a = asyncio.ensure_future(batcher.submit(1))
            for _ in range(5):
                await asyncio.sleep(0)
        # leaving the block without submitting (a bad body, say) wakes the batcher at once
        return batcher, await asyncio.wait_for(a, 10)

    batcher, a = asyncio.run(main())
    assert a == 10 and run.sizes == [1] and batcher.expected == 0


def test_requests_arriving_during_a_pass_form_the_next_batch():
    run = _Recorder(hold_first=True)

    async def main():
        batcher = MicroBatcher(run, max_wait=0.0)
        first = asyncio.ensure_future(batcher.submit(0))
        while not run.started.is_set():          # the first pass is running on the thread
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        await asyncio.sleep(0)
        run.release.set()
        return batcher, await asyncio.gather(first, *rest)

    batcher, results = asyncio.run(main())
    assert results == [i * 10 for i in range(10)]
    assert run.sizes == [1, 9] and batcher.batches == 2 and batcher.largest == 9
    assert batcher.inline == 0                  # sizes never timed yet run on the thread


# -- the service ---------------------------------------------------------------------------------

def test_service_follows_a_version_registered_elsewhere(tmp_path):
    from fastapi.testclient import TestClient

    from nbaimaas.backends.local import LocalBackend
    from nbaimaas.service.app import create_app
    from nbaimaas.service.wire import NPY_TYPE, encode_npy
    from nbaimaas.specs import DataSpec, TrainSpec

    from .conftest import BASE, TINY

    store = tmp_path / "store"
    local = LocalBackend(store)
    local.start_training(TrainSpec.from_dict({**TINY, "name": "tiny"})).wait(120)
    images = np.asarray(local.sample(DataSpec("digits", limit=300), n=4)["inputs"])
    app = create_app(store)                     # creates the token files
    auth = {"Authorization": "Bearer " + _token(store)}

    with TestClient(app, base_url=BASE) as client:
        def predict(ref, **kw):
            return client.post(f"/v1/models/{ref}/predict", content=encode_npy(images[:2]),
                               headers={**auth, "Content-Type": NPY_TYPE}, **kw)

        assert predict("tiny").json()["model"] == "tiny:1"
        assert predict("tiny", params={"top_k": 2}).json()["model"] == "tiny:1"
        _in_other_process(store, """
            loaded = reg.load("tiny:1")
            reg.register("tiny", weights=loaded.weights, spec=loaded.spec, info=loaded.info,
                         preprocess_meta=loaded.preprocess_meta,
                         preprocess_tensors=loaded.preprocess_tensors)
        """)
        assert predict("tiny").json()["model"] == "tiny:2"
        _in_other_process(store, "reg.delete('tiny:1')")
        gone = predict("tiny:1")
        assert gone.status_code == 404 and gone.json()["code"] == "not_found"
        # the fast door hands what it is not sure about to the framework, same answers
        odd = predict("tiny", params={"top_k": 0})
        assert odd.status_code == 422 and "top_k" in odd.json()["message"]
        bad = client.post("/v1/models/tiny/predict", content=b"\x80\x04pickle",
                          headers={**auth, "Content-Type": NPY_TYPE})
        assert bad.status_code == 415 and bad.json()["code"] == "unsupported_media"


def _token(store: Path) -> str:
    return (store / "token").read_text().strip()
