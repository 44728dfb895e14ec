"""Old import paths from before the merge core got its own package: they keep working for one
release, with a DeprecationWarning that names the new path.

Each old module name is registered in `sys.modules` as a light stand-in when `kinmerge` is
imported (nothing heavy is imported then); its first attribute read imports the new module and
warns. Registering the stand-ins up front, rather than finding them on import, keeps the
public `kinmerge.merge` the function: Python binds a freshly imported submodule onto its
parent package, and an already registered one is left alone.
"""
from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path

REMOVED_IN = "0.3"
_CORE = ("recipe", "validate", "params", "layers", "dtypes", "plan", "execute", "peak",
         "nonfinite", "merge", "multistage", "lora_merge")
MOVED: dict[str, str] = {f"kinmerge.{m}": f"kinmerge.core.{m}" for m in _CORE}
MOVED.update({
    "kinmerge.card": "kinmerge.lineage.card",
    "kinmerge.publish": "kinmerge.lineage.publish",
    "kinmerge.yamlload": "kinmerge.io.yamlload",
    "kinmerge.configfile": "kinmerge.io.configfile",
    "kinmerge.runners": "kinmerge.search.runners",
    "kinmerge.soup": "kinmerge.search.soup",
    "kinmerge.evolve": "kinmerge.search.evolve",
    "kinmerge.breed": "kinmerge.search.breed",
})
_PACKAGES = ("evolve", "breed")  # moved whole: each of their modules keeps its old name too


class _Moved(types.ModuleType):
    """Stands in for a moved module: reading any attribute imports the new one and warns."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"Moved to {new}; this name works until kinmerge {REMOVED_IN}.")
        self.__dict__["_new"] = new

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        new = self.__dict__["_new"]
        warnings.warn(f"{self.__name__} moved to {new}; import it from there (the old path "
                      f"is removed in kinmerge {REMOVED_IN})", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)


def all_moved() -> dict[str, str]:
    """Every old module name and its new one, the moved packages' own modules included."""
    names = dict(MOVED)
    root = Path(__file__).parent
    for pkg in _PACKAGES:
        for path in sorted((root / "search" / pkg).glob("*.py")):
            if path.stem != "__init__":
                names[f"kinmerge.{pkg}.{path.stem}"] = f"kinmerge.search.{pkg}.{path.stem}"
    return names


def install() -> None:
    for old, new in all_moved().items():
        sys.modules.setdefault(old, _Moved(old, new))


def package_attribute(name: str):
    """`kinmerge.evolve` / `kinmerge.breed` (and the other old modules) read as attributes."""
    module = sys.modules.get(f"kinmerge.{name}")
    if isinstance(module, _Moved):
        return module
    raise AttributeError(f"module 'kinmerge' has no attribute {name!r}")
