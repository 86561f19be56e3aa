"""Training throughput: the engine against the loop a user would write by hand, in one process.

Contenders (same model built by ``create_model`` with the same seeded init, same prepared data,
Adam lr 1e-3, batch 64, validation loss + accuracy after every epoch, one torch thread):

    hand        slicing a permutation of in-memory tensors (the baseline, ratio 1.00)
    dataloader  TensorDataset + DataLoader(shuffle=True)
    engine      ``ai.train(...)`` as a user calls it: progress events, validation and
                checkpoints every epoch, name=None; timed by the run's own clock (``r.seconds``),
                so data preparation, which the other contenders get for free, is not counted
    engine+prep the same call timed end to end by the caller (data preparation, model build,
                thread start included): what a notebook user waits for
    lightning   ``lightning.Trainer`` without logger, checkpoints, progress bar (its kindest set-up)
    skorch      ``NeuralNetClassifier`` with a predefined validation split

Samples/s = epochs x training samples / seconds (validation included). Rounds are interleaved,
the first dropped as warm-up; the table shows each contender's median samples/s and the median
over rounds of its ratio to the same round's hand loop (paired, so slow drift in the load of a
shared machine cancels).

    python -m bench.train [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import have, interleave, median, one_thread, private_home, report, spread, table  # noqa: E402

BATCH = 64
VAL_BATCH = 1024          # what the engine's evaluate_split uses
LR = 1e-3

# name -> (architecture, DataSpec fields, epochs per timed run)
WORKLOADS = {
    "lenet": ("lenet", {"image_size": 28}, 3),
    "mlp": ("mlp", {}, 30),
}


def _setup(workload: str):
    """Prepared data and a factory of identically initialised models (as ``ai.train`` builds them)."""
    from nbaimaas.engine.data import prepare
    from nbaimaas.engine.init import initialize
    from nbaimaas.engine.models import create_model
    from nbaimaas.specs import DataSpec, InitSpec, ModelSpec

    arch, fields, epochs = WORKLOADS[workload]
    data = prepare(DataSpec("digits", **fields))

    def new_model():
        model = create_model(ModelSpec(arch), data.info)
        initialize(model, InitSpec(), 0)
        return model

    return arch, fields, epochs, data, new_model


def _validate(model, xv, yv, loss_fn):
    """What every hand-written loop does after an epoch: val loss and accuracy, read once."""
    import torch

    model.eval()
    with torch.no_grad():
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for i in range(0, len(xv), VAL_BATCH):
            out = model(xv[i:i + VAL_BATCH])
            loss_sum += loss_fn(out, yv[i:i + VAL_BATCH]) * len(out)
            correct += (out.argmax(1) == yv[i:i + VAL_BATCH]).sum()
    model.train()
    return float(loss_sum) / len(xv), int(correct) / len(xv)


def hand_loop(data, new_model, epochs: int) -> float:
    import torch

    model, loss_fn = new_model(), torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y, n = data.train.x, data.train.y, len(data.train)
    g = torch.Generator().manual_seed(0)
    t0, epoch_s = time.perf_counter(), []
    model.train()
    for _ in range(epochs):
        te = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        running = torch.zeros(())
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.detach() * len(idx)
        float(running)                                      # the epoch's train loss, read once
        _validate(model, data.val.x, data.val.y, loss_fn)
        epoch_s.append(time.perf_counter() - te)
    return epochs * n / (time.perf_counter() - t0), epoch_s


def dataloader_loop(data, new_model, epochs: int) -> float:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model, loss_fn = new_model(), torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    train = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=BATCH, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=VAL_BATCH)
    t0, epoch_s = time.perf_counter(), []
    for _ in range(epochs):
        te = time.perf_counter()
        model.train()
        running = torch.zeros(())
        for xb, yb in train:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.detach() * len(xb)
        float(running)
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in val)
        correct / len(data.val)
        epoch_s.append(time.perf_counter() - te)
    return epochs * len(data.train) / (time.perf_counter() - t0), epoch_s


def engine(arch: str, fields: dict, epochs: int, n: int, end_to_end: bool = False) -> float:
    import nbaimaas as ai
    from nbaimaas.events import EpochEnded

    epoch_s = []
    keep = lambda e: epoch_s.append(e.seconds) if isinstance(e, EpochEnded) else None  # noqa: E731
    t0 = time.perf_counter()
    r = ai.train(data="digits", model=arch, epochs=epochs, batch_size=BATCH, lr=LR, seed=0,
                 progress=keep, **fields)
    wall = time.perf_counter() - t0
    assert r.status == "completed", r.message
    return epochs * n / (wall if end_to_end else r.seconds), epoch_s


def lightning_loop(data, new_model, epochs: int) -> float:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Wrapped(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net, self.loss_fn = net, torch.nn.CrossEntropyLoss()

        def training_step(self, batch, _):
            xb, yb = batch
            return self.loss_fn(self.net(xb), yb)

        def validation_step(self, batch, _):
            xb, yb = batch
            out = self.net(xb)
            self.log("val_loss", self.loss_fn(out, yb))
            self.log("val_acc", (out.argmax(1) == yb).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

        def on_train_epoch_start(self):
            stamps.append(time.perf_counter())

        def on_fit_end(self):
            stamps.append(time.perf_counter())

    stamps: list[float] = []
    train = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=BATCH, shuffle=True)
    val = DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=VAL_BATCH)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    module = Wrapped(new_model())
    t0 = time.perf_counter()
    trainer.fit(module, train, val)
    return epochs * len(data.train) / (time.perf_counter() - t0), [b - a for a, b in zip(stamps, stamps[1:])]


def skorch_loop(data, new_model, epochs: int) -> float:
    import torch
    from skorch import NeuralNetClassifier
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    net = NeuralNetClassifier(
        new_model(), criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=LR,
        batch_size=BATCH, max_epochs=epochs, train_split=predefined_split(Dataset(data.val.x, data.val.y)),
        iterator_train__shuffle=True, iterator_valid__batch_size=VAL_BATCH, verbose=0, device="cpu")
    t0 = time.perf_counter()
    net.fit(data.train.x, data.train.y)
    return epochs * len(data.train) / (time.perf_counter() - t0), list(net.history[:, "dur"])


def _quiet_peers() -> None:
    if have("lightning"):
        import lightning  # noqa: F401 - configures its loggers on import; quieten them after
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="skorch")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def bench_workload(workload: str, reps: int, verbose: bool = False, only=None) -> dict:
    arch, fields, epochs, data, new_model = _setup(workload)
    n = len(data.train)
    contenders = {
        "hand": lambda: hand_loop(data, new_model, epochs),
        "dataloader": lambda: dataloader_loop(data, new_model, epochs),
        "engine": lambda: engine(arch, fields, epochs, n),
        "engine+prep": lambda: engine(arch, fields, epochs, n, end_to_end=True),
    }
    notes = []
    for peer, fn in (("lightning", lightning_loop), ("skorch", skorch_loop)):
        if have(peer):
            contenders[peer] = (lambda fn=fn: fn(data, new_model, epochs))
        else:
            notes.append(f"{peer} not installed (pip install 'nbaimaas[bench]' or {peer}); skipped")
    if only:
        contenders = {k: v for k, v in contenders.items() if k in only or k == "hand"}
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if verbose else None
    got = interleave(contenders, reps, log=log)
    # Ratios are paired per round (this round's figure over this round's hand loop), then the
    # median is taken: the load of a shared machine drifts between rounds, less within one.
    # "best epoch" is the fastest epoch of a run (validation included): other tenants' load only
    # ever adds time, so on a busy machine it is the steadier estimate of the same cost.
    hand = [sps for sps, _ in got["hand"]]
    hand_best = [n / min(ep) for _, ep in got["hand"]]
    rows = {}
    for name, runs in got.items():
        sps = [s for s, _ in runs]
        best = [n / min(ep) if ep else math.nan for _, ep in runs]
        rows[name] = {"samples_per_s": median(sps), "spread": spread(sps), "runs": [round(s, 1) for s in sps],
                      "ratio": median([a / b for a, b in zip(sps, hand)]),
                      "ratios": [round(a / b, 3) for a, b in zip(sps, hand)],
                      "best_epoch_samples_per_s": median(best),
                      "best_epoch_ratio": median([a / b for a, b in zip(best, hand_best)])}
    return {"workload": workload, "arch": arch, "data": {"name": "digits", **fields},
            "train_samples": n, "val_samples": len(data.val), "epochs": epochs, "batch": BATCH,
            "reps": reps, "contenders": rows, "notes": notes}


TITLES = {"lenet": "LeNet-5, digits at 28x28", "mlp": "MLP 64-128-10, digits"}


def render(results: list[dict]) -> str:
    names = list(dict.fromkeys(k for r in results for k in r["contenders"]))
    rows = []
    for r in results:
        c = r["contenders"]
        title = f"{TITLES[r['workload']]} ({r['epochs']} epochs x {r['train_samples']})"
        rows.append([title, "whole run"] + [f"{c[k]['ratio']:.2f} ({c[k]['samples_per_s']:,.0f}/s)"
                                            if k in c else "-" for k in names])
        rows.append(["", "best epoch"] + [
            f"{c[k]['best_epoch_ratio']:.2f} ({c[k]['best_epoch_samples_per_s']:,.0f}/s)"
            if k in c and k != "engine+prep" else "-" for k in names])
    notes = sorted({n for r in results for n in r["notes"]})
    return table(["work", "timed"] + names, rows) + "".join(f"\n- {n}" for n in notes)


def run(reps: int = 7, workloads=("lenet", "mlp"), verbose: bool = False, only=None) -> dict:
    private_home()
    one_thread()
    _quiet_peers()
    results = [bench_workload(w, reps, verbose, only) for w in workloads]
    return {"results": results, "table": render(results)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="2 repetitions (a smoke test, not a figure)")
    p.add_argument("--workload", choices=list(WORKLOADS), action="append")
    p.add_argument("--only", help="comma-separated contenders to run besides the hand loop")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("-v", "--verbose", action="store_true", help="print every round")
    a = p.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    out = run(2 if a.quick else a.reps, tuple(a.workload or WORKLOADS), a.verbose, only)
    return report(out, "training samples/s, ratio to the hand loop (median of interleaved rounds, 1 torch thread)", a.json)


if __name__ == "__main__":
    main()
