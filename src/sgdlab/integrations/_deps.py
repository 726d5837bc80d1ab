"""Optional dependencies of the integrations: one clear error when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from sgdlab.errors import SgdlabError

#: module → the pip requirement that provides it
PROVIDERS = {
    "lightning": "lightning",
    "transformers": "transformers accelerate",
    "torch.utils.tensorboard": "tensorboard",
    "tensorboard": "tensorboard",
}


class OptionalDependencyError(SgdlabError, ImportError):
    """An integration was used without the package it needs (one line: what to install)."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`OptionalDependencyError` naming
    the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = PROVIDERS.get(module, module.split(".")[0])
        raise OptionalDependencyError(
            f"{feature} needs the {pkg!r} package ({exc}); install it with `pip install {pkg}` "
            "or `pip install 'sgdlab[integrations]'`"
        ) from None
