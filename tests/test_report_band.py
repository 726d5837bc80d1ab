"""The band of a metric across chains (median, 10th and 90th percentiles, NaN ignored): the
sorted fast path against numpy's per-column ``nanmedian`` / ``nanpercentile``, to the bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sgdlab.report.figures import band, nan_percentiles


@pytest.mark.parametrize("shape", [(256, 500), (1, 40), (2, 9), (3, 7), (17, 1), (64, 300)])
def test_band_equals_numpy_to_the_bit(shape):
    rng = np.random.default_rng(sum(shape))
    values = rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3, shape)
    values[rng.random(shape) < 0.25] = np.nan
    values[:, 0] = np.nan  # a column with no value at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = (np.nanmedian(values, axis=0), np.nanpercentile(values, 10, axis=0),
                     np.nanpercentile(values, 90, axis=0))  # fmt: skip
    for got, want in zip(band(values), reference, strict=True):
        assert np.array_equal(got, want, equal_nan=True)


def test_other_percentiles_and_ties():
    values = np.array([[1.0, 2.0, np.nan], [1.0, np.nan, np.nan], [3.0, 2.0, 5.0]])
    for q in (0.0, 25.0, 37.5, 75.0, 100.0):
        (got,) = nan_percentiles(values, (q,))
        assert np.array_equal(got, np.nanpercentile(values, q, axis=0), equal_nan=True)
