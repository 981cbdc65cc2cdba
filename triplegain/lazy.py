"""Package namespaces whose names are imported when first used, so that importing one module of a package
(``triplegain.agents.settings``, say) does not import the whole package.

A package's ``__init__`` keeps its imports for readers and type checkers under ``if TYPE_CHECKING:`` and sets
``__getattr__ = exported_lazily(__name__, {module: (names, …), …})``, the same imports as data: the first time a
name is read, its module is imported. ``triplegain coordinator status`` then imports the settings and the store,
not the agents, the LLM SDKs and the broker (README, "Performance").
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def exported_lazily(package: str, exports: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: each name of ``exports`` from its module, imported on first use."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
