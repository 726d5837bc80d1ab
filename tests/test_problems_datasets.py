"""Datasets: bundled shapes, standardisation, synthetic law, IDX and NPZ files written here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.problems import build_problem
from sgdlab.problems.datasets import (
    DataParams,
    load_data,
    load_mnist,
    load_npz,
    load_sklearn,
    make_synthetic,
    read_idx,
)
from sgdlab.rng import Streams


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [
        ("digits", (1797, 64), 10),
        ("breast_cancer", (569, 30), 2),
        ("wine", (178, 13), 3),
        ("iris", (150, 4), 3),
    ],
)
def test_bundled_shapes(name, shape, classes):
    ds = load_sklearn(name)
    assert tuple(ds.X.shape) == shape and ds.n_classes == classes
    assert ds.X.dtype == torch.float64 and ds.y.dtype == torch.int64
    assert set(ds.y.tolist()) == set(range(classes))


def test_standardisation_uses_training_statistics():
    data = load_data(DataParams(dataset="digits", holdout=0.2), Streams(0), torch.float64)
    X = data.X
    varying = data.std != 1.0
    torch.testing.assert_close(X.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        X.std(0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=torch.float64)
    )
    assert (X[:, ~varying] == 0).all()  # constant pixels are only centred
    assert data.X_test.shape == (359, 64) and X.shape == (1438, 64)
    raw = load_data(DataParams(dataset="digits", standardize=False), Streams(0), torch.float32)
    assert raw.X.dtype == torch.float32 and float(raw.X.max()) == 16.0


def test_synthetic_law_and_determinism():
    n, p, C, noise = 200_000, 5, 4, 0.2
    flips = torch.Generator().manual_seed(9)
    ds = make_synthetic(torch.Generator().manual_seed(0), n, p, C, 3.0, noise, flips)
    again = make_synthetic(
        torch.Generator().manual_seed(0), n, p, C, 3.0, noise, torch.Generator().manual_seed(9)
    )
    assert torch.equal(ds.X, again.X) and torch.equal(ds.y, again.y)
    assert ds.X.shape == (n, p) and ds.n_classes == C
    freq = torch.bincount(ds.y, minlength=C).double() / n
    se = (0.25 * 0.75 / n) ** 0.5
    assert ((freq - 0.25).abs() < 5 * se).all()
    # the Bayes-like rule "nearest mean" must fail at least at the flip rate·(C−1)/C
    means = torch.stack([ds.X[ds.y == c].mean(0) for c in range(C)])
    pred = torch.cdist(ds.X, means).argmin(1)
    err = (pred != ds.y).double().mean()
    assert err > noise * (C - 1) / C - 5 * (0.15 * 0.85 / n) ** 0.5


def test_label_noise_has_its_own_stream():
    """Turning the label_noise stream off keeps the clean labels and the same features;
    re-seeding it changes only which labels flip."""
    params = {"dataset": "synthetic", "n_samples": 400, "n_features": 3, "n_classes": 3,
              "label_noise": 0.3}  # fmt: skip
    noisy = build_problem("logistic_regression", params, Streams(2))
    clean = build_problem("logistic_regression", params, Streams(2, off=["label_noise"]))
    other = build_problem("logistic_regression", params, Streams(2, seeds={"label_noise": 5}))
    zero = build_problem("logistic_regression", {**params, "label_noise": 0.0}, Streams(2))
    assert torch.equal(noisy.X, clean.X) and torch.equal(noisy.X, other.X)
    assert torch.equal(clean.y, zero.y)
    flipped = int((noisy.y != clean.y).sum())
    rate = 0.3 * 2 / 3  # a flip lands on another class with probability (C−1)/C
    sd = (400 * rate * (1 - rate)) ** 0.5
    assert abs(flipped - 400 * rate) < 4 * sd
    assert not torch.equal(noisy.y, other.y)


def test_synthetic_problem_through_the_data_stream():
    params = {"dataset": "synthetic", "n_samples": 300, "n_features": 4, "n_classes": 2}
    a = build_problem("logistic_regression", params, Streams(1))
    b = build_problem("logistic_regression", params, Streams(1, seeds={"init": 3}))
    c = build_problem("logistic_regression", params, Streams(1, seeds={"data": 3}))
    assert torch.equal(a.X, b.X) and not torch.equal(a.X, c.X)
    assert a.dim == 5 * 2 and a.n == 300


def test_subsample_takes_a_random_subset():
    data = load_data(
        DataParams(dataset="iris", subsample=40, standardize=False), Streams(2), torch.float64
    )
    full = load_sklearn("iris").X
    assert data.X.shape == (40, 4)
    assert all(bool((full == row).all(1).any()) for row in data.X)


def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">i", s) for s in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 3, 2), dtype=np.uint8)
    labels = np.array([3, 1, 3, 0, 1, 0], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x08))
    return tmp_path, images, labels


def test_idx_reader_raw_gzip_and_other_types(tmp_path, mnist_dir):
    folder, images, labels = mnist_dir
    np.testing.assert_array_equal(read_idx(folder / "train-images-idx3-ubyte.gz"), images)
    np.testing.assert_array_equal(read_idx(folder / "train-labels-idx1-ubyte"), labels)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(floats, 0x0E))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match=r"problem\.path"):
        read_idx(tmp_path / "bad")


def test_mnist_loader_from_directory_and_file(mnist_dir):
    folder, images, _ = mnist_dir
    ds = load_mnist(folder)
    assert ds.X.shape == (6, 6) and ds.feature_shape == (3, 2) and ds.n_classes == 3
    np.testing.assert_allclose(ds.X.numpy(), images.reshape(6, -1) / 255.0)
    assert ds.y.tolist() == [2, 1, 2, 0, 1, 0]  # labels {0,1,3} → codes {0,1,2}
    same = load_mnist(folder / "train-images-idx3-ubyte.gz")  # labels inferred by name
    assert torch.equal(same.X, ds.X)
    with pytest.raises(ConfigError, match=r"problem\.path"):
        load_mnist(folder, split="test")
    p = build_problem("mlp", {"dataset": "mnist", "path": str(folder), "widths": [2]})
    assert p.X.shape == (6, 6) and p.n_classes == 3


def test_npz_loader(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.array(["b", "a", "b", "c", "a", "c"])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_npz(tmp_path / "d.npz")
    assert ds.X.shape == (6, 4) and ds.n_classes == 3 and ds.y.tolist() == [1, 0, 1, 2, 0, 2]
    p = build_problem(
        "logistic_regression", {"dataset": "npz", "path": str(tmp_path / "d.npz"), "l2": 0.1}
    )
    assert p.dim == 5 * 3
    np.savez(tmp_path / "nolabels.npz", x=x)
    with pytest.raises(ConfigError, match="lacks"):
        load_npz(tmp_path / "nolabels.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_unknown_dataset_is_rejected_by_the_params():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        DataParams(dataset="imagenet")
    assert info.value.errors()[0]["loc"] == ("dataset",)
