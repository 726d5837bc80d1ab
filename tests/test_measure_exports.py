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


def test_flat_namespace_is_the_union_of_the_subpackages():
    from sgdlab.measure import curvature, noise

    assert sorted(measure.__all__) == sorted([*noise.__all__, *curvature.__all__])
    assert not set(noise.__all__) & set(curvature.__all__)
    for sub in (noise, curvature):
        for name in sub.__all__:
            assert getattr(measure, name) is getattr(sub, name), name
