"""Classification datasets for the finite problems: bundled, synthetic, or a user's file.

Static label noise (``label_noise`` q, ``label_noise_mode: static``) applies to every
dataset as it is loaded: each label is replaced with probability q by a uniformly drawn
class, drawn from the ``label_noise`` stream (turning that stream off keeps the clean labels;
:mod:`sgdlab.problems.data_noise`, which also holds dynamic label noise and augmentation).

Every loader returns a :class:`Dataset` — features ``X`` as a float64 tensor ``[N, p]``
(images are flattened), integer labels ``y`` (int64, ``[N]``, values ``0..C−1``) and the
number of classes ``C``. Nothing is ever downloaded:

* ``digits``, ``breast_cancer``, ``wine``, ``iris`` — bundled with scikit-learn.
* ``synthetic`` — a Gaussian mixture drawn from a torch generator (the ``data`` stream):
  class means μ_c ~ N(0, separation²/(2p) I) (so two class means are ≈ ``separation``
  apart), labels uniform on the C classes, x = μ_y + N(0, I) (the within-class noise is
  drawn in float32, 4× faster, then widened), feature j then scaled by (j + 1)^(−decay)
  (``feature_decay``; 0 keeps them isotropic — an ill-conditioned problem needs a decay
  and ``standardize: false``).
* ``mnist`` — IDX files (raw or ``.gz``): a directory holding the standard
  ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` names, or the images file itself
  (labels file given or inferred by name). Pixels are scaled to [0, 1]. Like ``digits``
  (8 × 8) its samples are images (``feature_shape`` H × W), which augmentation needs.
* ``npz`` — a NumPy ``.npz`` archive with arrays ``x`` (``[N, ...]``) and ``y`` (``[N]``).

:func:`load_data` applies, in this order and with the ``data`` stream: an optional random
subsample, an optional random hold-out split, feature standardisation
(x − mean) / std with statistics of the training part (constant features are only centred;
``standardize_mode: global``: one mean and std over all features, as images are usually
normalised — with per-pixel statistics a shifted stroke landing on a pixel that is almost
never lit is divided by that pixel's tiny std), and optional outliers: each training
sample, with probability ``outliers``, has its features multiplied by ``outlier_scale``
(a corrupted sample; its per-sample gradient and curvature are that many times larger —
heavy-tailed gradient noise).

Example:
    >>> ds = load_sklearn("iris")
    >>> tuple(ds.X.shape), ds.n_classes
    ((150, 4), 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems.base import ProblemParams
from sgdlab.problems.data_files import read_data_bytes, read_npz_arrays
from sgdlab.problems.data_noise import flip_labels
from sgdlab.rng import Streams

DatasetName = Literal["digits", "breast_cancer", "wine", "iris", "synthetic", "mnist", "npz"]
SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris")

#: rows drawn per block by :func:`make_synthetic` (part of the draw order, never change)
_SYNTH_BLOCK = 1 << 16


@dataclass(frozen=True)
class Dataset:
    """Features ``X [N, p]`` (float64), labels ``y [N]`` (int64 in ``0..C−1``)."""

    X: Tensor
    y: Tensor
    n_classes: int
    name: str
    feature_shape: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


# --------------------------------------------------------------------------- loaders
def load_sklearn(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets (no download)."""
    from sklearn import datasets as skd

    loaders = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
        "iris": skd.load_iris,
    }
    if name not in loaders:
        raise ConfigError(
            "problem.dataset", f"unknown dataset {name!r}; bundled: {SKLEARN_DATASETS}"
        )
    bunch = loaders[name]()
    X = torch.from_numpy(np.asarray(bunch.data, dtype=np.float64))
    y, n_classes = _encode_labels(np.asarray(bunch.target))
    shape = (8, 8) if name == "digits" else (X.shape[1],)  # digits are 8×8 images
    return Dataset(X, y, n_classes, name, shape)


def make_synthetic(
    generator: torch.Generator,
    n_samples: int,
    n_features: int,
    n_classes: int,
    separation: float = 3.0,
    label_noise: float = 0.0,
    label_generator: torch.Generator | None = None,
    feature_decay: float = 0.0,
) -> Dataset:
    """Gaussian-mixture classification data (see the module docstring).

    Draw order from ``generator``: the means ``[C, p]``, then per block of 65536 rows the
    labels and the within-class noise. From ``label_generator`` (the ``label_noise`` stream;
    ``None``: no flips): :func:`~sgdlab.problems.data_noise.flip_labels`. Memory is
    that of the result (float64 ``N·p``) plus one block.
    """
    p, C = n_features, n_classes
    means = torch.randn(C, p, generator=generator, dtype=torch.float64)
    means *= separation / math.sqrt(2 * p)
    X = torch.empty(n_samples, p, dtype=torch.float64)
    y = torch.empty(n_samples, dtype=torch.int64)
    for start in range(0, n_samples, _SYNTH_BLOCK):
        m = min(_SYNTH_BLOCK, n_samples - start)
        yb = torch.randint(0, C, (m,), generator=generator)
        xb = torch.randn(m, p, generator=generator, dtype=torch.float32)
        X[start : start + m] = xb.to(torch.float64) + means[yb]
        if feature_decay:
            X[start : start + m] *= torch.arange(1, p + 1, dtype=torch.float64) ** -feature_decay
        y[start : start + m] = yb
    if label_generator is not None and label_noise > 0:
        y = flip_labels(y, C, label_noise, label_generator)
    return Dataset(X, y, C, "synthetic", (p,))


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, field: str = "problem.path") -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed (detected by content).

    Layout: two zero bytes, a type code, the number of dimensions n, n big-endian int32
    sizes, then the data in big-endian order.
    """
    path = Path(path)
    raw = read_data_bytes(path, field)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(field, f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ConfigError(field, f"{path} is not an IDX file (bad header)")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dt = np.dtype(_IDX_DTYPES[raw[2]])
    count = math.prod(dims)
    offset = 4 + 4 * ndim
    if min(dims) < 0 or len(raw) - offset < count * dt.itemsize:
        raise ConfigError(field, f"{path} is truncated: expected {dims} values")
    return np.frombuffer(raw, dtype=dt, count=count, offset=offset).reshape(dims)


def load_idx(images: str | Path, labels: str | Path, name: str = "mnist") -> Dataset:
    """Images ``[N, ...]`` and labels ``[N]`` from two IDX files; uint8 pixels → [0, 1]."""
    xs = read_idx(images, "problem.path")
    ys = read_idx(labels, "problem.labels_path")
    if xs.shape[0] != ys.shape[0]:
        raise ConfigError("problem.labels_path", f"{xs.shape[0]} images but {ys.shape[0]} labels")
    X = torch.from_numpy(xs.reshape(xs.shape[0], -1).astype(np.float64))
    if xs.dtype == np.uint8:
        X /= 255.0
    y, n_classes = _encode_labels(ys)
    return Dataset(X, y, n_classes, name, tuple(xs.shape[1:]))


def load_mnist(
    path: str | Path, split: str = "train", labels_path: str | Path | None = None
) -> Dataset:
    """MNIST-style IDX data from a directory (standard file names) or an images file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError("problem.path", f"{path} does not exist")
    prefix = "train" if split == "train" else "t10k"
    if path.is_dir():
        images = _first_existing(path, f"{prefix}-images-idx3-ubyte", "problem.path")
        labels = (
            Path(labels_path)
            if labels_path
            else _first_existing(path, f"{prefix}-labels-idx1-ubyte", "problem.path")
        )
    else:
        images = path
        if labels_path:
            labels = Path(labels_path)
        else:
            stem = path.name.removesuffix(".gz").replace("images-idx3", "labels-idx1")
            if "labels-idx1" not in stem:
                raise ConfigError(
                    "problem.labels_path", f"cannot infer the labels file of {path}; set it"
                )
            labels = _first_existing(path.parent, stem, "problem.labels_path")
    if not labels.exists():
        raise ConfigError("problem.labels_path", f"{labels} does not exist")
    return load_idx(images, labels)


def load_npz(path: str | Path) -> Dataset:
    """A ``.npz`` archive with arrays ``x [N, ...]`` and ``y [N]``."""
    path = Path(path).expanduser()
    xs, ys = read_npz_arrays(path, "problem.path")
    if xs.shape[0] != ys.shape[0]:
        raise ConfigError("problem.path", f"x has {xs.shape[0]} rows but y has {ys.shape[0]}")
    X = torch.from_numpy(xs.reshape(xs.shape[0], -1).astype(np.float64))
    y, n_classes = _encode_labels(ys.reshape(-1))
    return Dataset(X, y, n_classes, "npz", tuple(xs.shape[1:]))


def standardize(
    X: Tensor, mean: Tensor | None = None, std: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(X − mean)/std per feature (statistics of ``X`` unless given); std 0 → 1."""
    if mean is None or std is None:
        mean = X.mean(dim=0)
        std = X.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
    return (X - mean) / std, mean, std


# ------------------------------------------------------------------ problem params
class DataParams(ProblemParams):
    """Dataset fields shared by the classification problems."""

    dataset: DatasetName = Field("digits", description="data set (bundled, synthetic or a file)")
    path: str | None = Field(None, description="file or directory for dataset mnist / npz")
    labels_path: str | None = Field(None, description="mnist: IDX labels file (else inferred)")
    split: Literal["train", "test"] = Field("train", description="mnist: which standard files")
    standardize: bool = Field(True, description="standardise features (training statistics)")
    standardize_mode: Literal["feature", "global"] = Field(
        "feature", description="standardise each feature, or all with one mean and std "
        "(images: augmentation then keeps rarely lit pixels on the scale of the others)"
    )
    subsample: int | None = Field(None, gt=1, description="keep a random subset of this size")
    holdout: float = Field(0.0, ge=0, lt=1, description="fraction held out as a test set")
    n_samples: int = Field(1000, gt=1, description="synthetic: number of samples N")
    n_features: int = Field(20, gt=0, description="synthetic: number of features p")
    n_classes: int = Field(3, ge=2, description="synthetic: number of classes C")
    separation: float = Field(
        3.0, ge=0, description="synthetic: typical distance between class means (noise std 1)"
    )
    label_noise: float = Field(
        0.0, ge=0, le=1, description="probability q that a label is replaced by a uniformly "
        "drawn class (stream label_noise)"
    )
    label_noise_mode: Literal["static", "dynamic"] = Field(
        "static", description="label noise drawn once when the data are built (static) or "
        "afresh each time a sample is drawn (dynamic)"
    )
    augment_shift: int = Field(
        0, ge=0, le=8, description="images: random shift by up to this many pixels in each "
        "direction, blank padding (stream augment)"
    )
    augment_flip: bool = Field(
        False, description="images: horizontal flip with probability 1/2 (stream augment)"
    )
    augment_noise: float = Field(
        0.0, ge=0, description="additive Gaussian pixel noise, std in raw pixel units "
        "(stream augment)"
    )
    outliers: float = Field(
        0.0, ge=0, lt=1, description="fraction of training samples whose (standardised) "
        "features are multiplied by outlier_scale (data stream): heavy-tailed gradients"
    )
    outlier_scale: float = Field(10.0, gt=0, description="factor of the outlier samples")
    feature_decay: float = Field(
        0.0, ge=0, description="synthetic: feature j scaled by (j+1)^(−decay) (ill-conditioning;"
        " use with standardize: false)",
    )

    def estimated_bytes(self, itemsize: int) -> int:
        """Memory to build the data: a synthetic N×p draw is held about four times (the
        float32 noise, the float64 features, the standardised copy, the dtype copy); the
        bundled and file datasets are counted once loaded."""
        if self.dataset != "synthetic":
            return 0
        return 4 * self.n_samples * self.n_features * 8


@dataclass
class LoadedData:
    """Training tensors (and an optional test split) in the problem's dtype."""

    X: Tensor
    y: Tensor
    X_test: Tensor | None
    y_test: Tensor | None
    n_classes: int
    feature_shape: tuple[int, ...]
    mean: Tensor | None
    std: Tensor | None


def load_dataset(
    params: DataParams,
    generator: torch.Generator,
    label_generator: torch.Generator | None = None,
) -> Dataset:
    """The raw dataset named by ``params`` (``generator``: the ``data`` stream;
    ``label_generator``: the ``label_noise`` stream, ``None`` when it is off), with static
    label noise (:func:`~sgdlab.problems.data_noise.flip_labels`) on any dataset."""
    ds = _load_clean(params, generator)
    if label_generator is None or params.label_noise == 0 or params.label_noise_mode != "static":
        return ds
    y = flip_labels(ds.y, ds.n_classes, params.label_noise, label_generator)
    return Dataset(ds.X, y, ds.n_classes, ds.name, ds.feature_shape)


def _load_clean(params: DataParams, generator: torch.Generator) -> Dataset:
    name = params.dataset
    if name in SKLEARN_DATASETS:
        return load_sklearn(name)
    if name == "synthetic":
        return make_synthetic(
            generator,
            params.n_samples,
            params.n_features,
            params.n_classes,
            params.separation,
            feature_decay=params.feature_decay,
        )
    if params.path is None:
        raise ConfigError("problem.path", f"dataset {name!r} reads a file: set problem.path")
    if name == "mnist":
        return load_mnist(params.path, params.split, params.labels_path)
    if name == "npz":
        return load_npz(params.path)
    raise ConfigError("problem.dataset", f"unknown dataset {name!r}")  # pragma: no cover


def load_data(params: DataParams, streams: Streams, dtype: torch.dtype) -> LoadedData:
    """Load, subsample, split and standardise as ``params`` says (see the module docstring)."""
    gen = streams.generator("data")
    labels = streams.generator("label_noise") if streams.enabled("label_noise") else None
    ds = load_dataset(params, gen, labels)
    X, y = ds.X, ds.y
    if params.subsample is not None and params.subsample > X.shape[0]:
        raise ConfigError(
            "problem.subsample",
            f"{params.subsample} is more than the {X.shape[0]} samples of dataset "
            f"{params.dataset!r}: use a smaller subsample or leave it out",
        )
    if params.subsample is not None and params.subsample < X.shape[0]:
        keep = torch.randperm(X.shape[0], generator=gen)[: params.subsample]
        X, y = X[keep], y[keep]
    X_test = y_test = None
    if params.holdout > 0:
        n_test = round(params.holdout * X.shape[0])
        if n_test < 1 or n_test >= X.shape[0] - 1:
            raise ConfigError("problem.holdout", f"leaves no test or no training data (N={len(X)})")
        perm = torch.randperm(X.shape[0], generator=gen)
        X_test, y_test = X[perm[:n_test]], y[perm[:n_test]]
        X, y = X[perm[n_test:]], y[perm[n_test:]]
    mean = std = None
    if params.standardize and params.standardize_mode == "global":
        mu, sd = X.mean(), X.std(unbiased=False)
        mean = mu.expand(X.shape[1]).clone()
        std = (sd if sd > 0 else torch.ones_like(sd)).expand(X.shape[1]).clone()
        X = (X - mean) / std
        if X_test is not None:
            X_test = (X_test - mean) / std
    elif params.standardize:
        X, mean, std = standardize(X)
        if X_test is not None:
            X_test, _, _ = standardize(X_test, mean, std)
    if params.outliers > 0:  # corrupted training samples: a data bug with heavy tails
        bad = torch.rand(X.shape[0], generator=gen, dtype=torch.float64) < params.outliers
        X = torch.where(bad[:, None], X * params.outlier_scale, X)
    return LoadedData(
        X=X.to(dtype).contiguous(),
        y=y.contiguous(),
        X_test=None if X_test is None else X_test.to(dtype).contiguous(),
        y_test=y_test,
        n_classes=ds.n_classes,
        feature_shape=ds.feature_shape,
        mean=mean,
        std=std,
    )


# ---------------------------------------------------------------------- helpers
def _encode_labels(labels: np.ndarray) -> tuple[Tensor, int]:
    """Map arbitrary labels to ``0..C−1`` (sorted order); returns (int64 tensor, C)."""
    classes, codes = np.unique(labels, return_inverse=True)
    return torch.from_numpy(codes.reshape(-1).astype(np.int64)), len(classes)


def _first_existing(folder: Path, stem: str, field: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise ConfigError(field, f"{folder} has neither {stem} nor {stem}.gz")
