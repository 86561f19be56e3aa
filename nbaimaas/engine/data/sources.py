"""User data: in-process arrays/DataFrames (``name="inline"``), CSV files and image folders.

Every source becomes a ``RawData`` so it gets the same splitting, cleaning and preprocessing as
the built-in datasets. Mistakes are answered with one line that names what was expected.

Choices worth knowing:
- Non-numeric DataFrame/CSV feature columns are kept and one-hot encoded later, with categories
  fitted on the training split (an unseen category becomes all zeros).
- Targets: strings/bools, or integer-valued numbers with at most ``MAX_CLASSES`` distinct values
  (and fewer than half the samples), are classes; other numbers are a regression target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError, unknown_name
from ...specs import DataSpec
from .catalog import DATASETS
from .raw import RawData, encode_labels, need

MAX_CLASSES = 100
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
INLINE_FORMS = "(X, y) arrays, a DataFrame with target=, a 1-D series, or (texts, labels)"


def load(spec: DataSpec, inline: Any = None) -> RawData:
    """The raw data ``spec.name`` points at: built-in, inline, a CSV path or an image folder."""
    if spec.name == "inline":
        return from_inline(inline, spec)
    if spec.name in DATASETS:
        return DATASETS.get(spec.name).load()
    path = Path(spec.name).expanduser()
    if path.is_dir():
        return from_folder(path, spec.image_size)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        if not path.is_file():
            raise DataError(f"CSV file '{spec.name}' does not exist")
        return from_csv(path, spec.target)
    if "/" in spec.name or "\\" in spec.name:
        raise DataError(f"path '{spec.name}' does not exist (expected a CSV file or a folder of "
                        "class subfolders)")
    raise unknown_name("dataset", spec.name, DATASETS.names())


def to_numpy(a: Any) -> np.ndarray:
    """numpy from numpy, torch tensors, lists and pandas objects (torch is never required)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        return a.detach().cpu().numpy()
    if hasattr(a, "to_numpy"):
        return a.to_numpy()
    return np.asarray(a)


def infer_target(y: np.ndarray) -> tuple[str, np.ndarray, list[str]]:
    """(task, encoded y, class names): classes for labels, regression for measured values."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y must be one label or value per sample; got shape {tuple(y.shape)}")
    numeric = np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_)
    if numeric:
        n_unique = len(np.unique(y))
        integral = bool(np.all(np.mod(y, 1) == 0))
        if not (integral and n_unique <= MAX_CLASSES and n_unique <= max(2, len(y) // 2)):
            return "regression", y.astype(np.float64), []
    labels, classes = encode_labels(y.astype(str) if not numeric else y)
    return "classification", labels, classes


def from_inline(inline: Any, spec: DataSpec) -> RawData:
    if inline is None:
        raise DataError(f"name='inline' needs data passed in process: {INLINE_FORMS}")
    pd = _pandas_or_none()
    if pd is not None and isinstance(inline, pd.DataFrame):
        return from_frame(inline, spec.target, "inline")
    if isinstance(inline, (tuple, list)) and len(inline) == 2:
        x, y = inline
        if _is_texts(x):
            return _texts(list(x), y)
        return from_arrays(to_numpy(x), to_numpy(y), "inline")
    return from_series(to_numpy(inline), "inline")


def _pandas_or_none() -> Any:
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _is_texts(x: Any) -> bool:
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and isinstance(x[0], str)
    return isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "US"


def _check_lengths(n_x: int, n_y: int) -> None:
    if n_x == 0:
        raise DataError("the data is empty (0 samples)")
    if n_x != n_y:
        raise DataError(f"X has {n_x} rows but y has {n_y} labels")


def _texts(texts: list, labels: Any) -> RawData:
    labels = to_numpy(labels)
    _check_lengths(len(texts), len(labels))
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"text data must be strings; item {i} is {type(t).__name__}")
    task, y, classes = infer_target(labels)
    if task != "classification":
        raise DataError("text data needs class labels (strings or integers), not measured values")
    return RawData("inline", "text", task, texts, y, classes)


def from_arrays(x: np.ndarray, y: np.ndarray, name: str) -> RawData:
    """2-D X -> table; 3-D [N, H, W] or 4-D [N, C, H, W] (or channels-last) -> images."""
    _check_lengths(len(x), len(y))
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"X must be numeric; got dtype {x.dtype} (pass a DataFrame to one-hot "
                        "encode text columns)")
    task, y, classes = infer_target(y)
    if x.ndim == 2:
        cols = [f"x{i}" for i in range(x.shape[1])]
        return RawData(name, "tabular", task, x.astype(np.float64), y, classes, columns=cols)
    if x.ndim in (3, 4):
        if task != "classification":
            raise DataError("image data needs class labels, not measured values")
        images = _channels_first(x)
        return RawData(name, "image", task, images, y, classes, raw_max=_raw_max(images))
    raise DataError(f"X must be 2-D (table) or 3-D/4-D (images); got shape {tuple(x.shape)}")


def _channels_first(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]                                      # [N, H, W] -> [N, 1, H, W]
    if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [N, H, W, C] -> [N, C, H, W]
    return x


def _raw_max(images: np.ndarray) -> float:
    """What one raw unit means: 255 for uint8 or 0..255 data, 1 for data already in 0..1."""
    if images.dtype == np.uint8:
        return 255.0
    top = float(np.nanmax(images)) if images.size else 1.0
    return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else top


def from_series(x: np.ndarray, name: str) -> RawData:
    x = np.squeeze(x) if x.ndim == 2 and 1 in x.shape else x
    if x.ndim != 1:
        raise DataError(f"inline data must be {INLINE_FORMS}; got an array of shape {tuple(x.shape)}")
    if len(x) == 0:
        raise DataError("the data is empty (0 samples)")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"a series must be numeric; got dtype {x.dtype}")
    return RawData(name, "series", "forecast", x.astype(np.float64))


def from_frame(df: Any, target: str | None, name: str) -> RawData:
    """A table with a target column; other columns are features (text columns one-hot later)."""
    if target is None:
        raise DataError(f"table data needs target=COLUMN; columns: {', '.join(map(str, df.columns))}")
    if target not in df.columns:
        raise unknown_name("target column", target, [str(c) for c in df.columns])
    if len(df) == 0:
        raise DataError("the data is empty (0 samples)")
    features = df.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"table data has no feature columns besides the target '{target}'")
    y_col = df[target]
    keep = y_col.notna().to_numpy()
    task, y, classes = infer_target(y_col[keep].to_numpy())
    x = features[keep].reset_index(drop=True)
    x.columns = [str(c) for c in x.columns]
    return RawData(name, "tabular", task, x, y, classes, columns=list(x.columns), frame=True,
                   missing_targets=int((~keep).sum()))


def from_csv(path: Path, target: str | None) -> RawData:
    pd = need("pandas", path.name, "pandas")
    try:
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as e:  # parser errors: report the file, not a pandas traceback
        raise DataError(f"cannot read CSV '{path}': {e}".splitlines()[0]) from None
    return from_frame(df, target, path.stem)


def from_folder(path: Path, image_size: int | None) -> RawData:
    """One subfolder of images per class; all images resized to a common size on load."""
    image_mod = need("PIL.Image", path.name, "pillow")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and _images_in(d))
    if not classes:
        raise DataError(f"folder '{path}' has no class subfolders (expected one subfolder of "
                        "images per class)")
    files = [(f, i) for i, c in enumerate(classes) for f in _images_in(path / c)]
    with image_mod.open(files[0][0]) as first:
        mode = "L" if first.mode in GRAY_MODES else "RGB"
        size = (image_size, image_size) if image_size else first.size
    arrays = [_read_image(image_mod, f, mode, size) for f, _ in files]
    x = np.stack(arrays)                                       # [N, C, H, W] uint8
    y = np.asarray([i for _, i in files], dtype=np.int64)
    return RawData(path.name, "image", "classification", x, y, classes, raw_max=255.0)


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def _read_image(image_mod: Any, file: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    with image_mod.open(file) as im:
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, image_mod.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)                     # [H, W] or [H, W, 3]
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)   # [C, H, W]
