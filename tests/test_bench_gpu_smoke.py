"""bench/gpu.py has to work the first time it meets a GPU (device time is scarce): its smoke mode
runs every column on the CPU with tiny data, so a broken call or a renamed keyword shows here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_every_column_in_smoke_mode(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "bench/gpu.py", "--smoke", "--epochs", "2", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={"NBAIMAAS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
                            "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["device"] == "cpu (smoke run)"
    assert [row["work"].split(",")[0] for row in report["results"]] == ["LeNet-5", "LeNet-5", "small ResNet"]
    for row in report["results"]:
        speeds, errors = row["samples_per_s"], row["errors"]
        for name in ("dataloader", "hand", "engine"):
            assert speeds.get(name, 0) > 0, (row["work"], name, errors.get(name))
        assert errors["graph"] == "RuntimeError: needs CUDA"          # the one CUDA-only column
        assert speeds.get("lightning", 0) > 0 or errors["lightning"].startswith("ModuleNotFoundError")
    assert "| work | DataLoader loop |" in report["table"]
