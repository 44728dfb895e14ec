"""PEP 562 lazy attributes: a package's public names load on first use, so importing the
package (and every command that never touches tensors) does not import torch.

    __getattr__, __dir__ = lazy_attributes(globals(), {"open_model": "kinmerge.io.reader"})

The name is read from its module on first access and stored in the package, so later reads
are plain attribute reads and `from package import name` works as before.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(namespace: dict[str, Any], names: dict[str, str],
                    fallback: Callable[[str], Any] | None = None):
    package = namespace["__name__"]

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            if fallback is not None:
                return fallback(name)
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
