"""Reading a user's data files safely (private to :mod:`sgdlab.problems.datasets`).

A dataset path comes from a config, so it can name anything: a folder, a device that never
ends (``/dev/zero``), a text file, a gzip or zip "bomb" that expands a thousandfold. Each
reader accepts regular files only, reads at most :data:`MAX_DATA_BYTES` (after
decompression), and turns every failure into one :class:`~sgdlab.errors.ConfigError` line
naming the config field.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from sgdlab.errors import ConfigError
from sgdlab.validation import clip

__all__ = ["MAX_DATA_BYTES", "read_data_bytes", "read_npz_arrays"]

#: the most bytes a data file may hold once decompressed (EMNIST, the largest IDX set, is
#: under 0.8 GB)
MAX_DATA_BYTES = 2 << 30


def _regular_file(path: Path, field: str) -> None:
    if not path.exists():
        raise ConfigError(field, f"{path} does not exist")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ConfigError(field, f"{path} is {kind}; give a data file")


def _too_big(path: Path, field: str) -> ConfigError:
    return ConfigError(
        field, f"{path} holds more than {MAX_DATA_BYTES >> 30} GiB of data (decompressed)"
    )


def read_data_bytes(path: Path, field: str) -> bytes:
    """The bytes of a regular file, gunzipped when it is gzip-compressed (by content)."""
    _regular_file(path, field)
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            raw = fh.read(MAX_DATA_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ConfigError(field, f"cannot read {path}: {clip(str(exc), 120)}") from None
    if len(raw) > MAX_DATA_BYTES:
        raise _too_big(path, field)
    return raw


def read_npz_arrays(path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of a ``.npz`` archive (no pickled objects), numeric ``x``."""
    _regular_file(path, field)
    try:
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_DATA_BYTES:
                raise _too_big(path, field)
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise ConfigError(
                    field, f"{path} lacks array(s) {sorted(missing)}; has {npz.files[:8]}"
                )
            xs, ys = np.asarray(npz["x"]), np.asarray(npz["y"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(
            field, f"{path} is not a readable .npz archive ({clip(str(exc), 100)})"
        ) from None
    if xs.ndim < 1 or ys.ndim < 1:
        raise ConfigError(field, f"{path}: x and y need the samples in dim 0")
    if not (np.issubdtype(xs.dtype, np.number) or xs.dtype == np.bool_):
        raise ConfigError(field, f"{path}: x must hold numbers, not {xs.dtype}")
    return xs, ys
