"""The flat ``sgdlab.measure`` namespace: every public name resolves to the object, never to a
submodule of the same name (a module named like its function would shadow it)."""

import types

import sgdlab.measure as measure


def test_every_export_resolves_to_its_object():
    for name in measure.__all__:
        obj = getattr(measure, name)
        assert not isinstance(obj, types.ModuleType), name
    # and still after every submodule has been imported
    for name in measure.__all__:
        assert not isinstance(getattr(measure, name), types.ModuleType), name


def test_unknown_name():
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        measure.not_a_measure  # noqa: B018
