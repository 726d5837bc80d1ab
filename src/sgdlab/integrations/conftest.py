"""pytest (doctests of the package): the framework modules import their framework when they
are imported, so where one is not installed its module is left out of the doctest collection
(``tests/test_integrations_*.py`` then skip with a message, or fail in CI)."""

from importlib.util import find_spec

#: module file → the package it imports
_NEEDS = {"lightning.py": "lightning", "huggingface.py": "transformers"}

collect_ignore = [file for file, pkg in _NEEDS.items() if find_spec(pkg) is None]
