"""Pretraining mixtures: what a base checkpoint is taught.

Each module in this package is one mixture, named by its file name (`labkit pretrain --mixture
<name>`). A mixture module defines

    demonstrations(seed: int, p_wrong: float, p_slip: float) -> Iterator[tuple[str, str]]

an endless, seeded stream of (prompt, completion) pairs (completion without EOS), and may define
`EVAL_SETS` (names of shipped eval sets for the model card; default: all) and `DESCRIPTION` (one
line for the card). Adding a mixture is adding a file: nothing else needs to change.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def mixture_names() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def load_mixture(name: str) -> ModuleType:
    """The mixture module `name`, or ValueError naming the accepted mixtures."""
    names = mixture_names()
    if name not in names:
        raise ValueError(f"unknown pretraining mixture {name!r}; accepted: {', '.join(names)}")
    module = importlib.import_module(f"{__name__}.{name}")
    if not callable(getattr(module, "demonstrations", None)):
        raise ValueError(f"mixture {name!r} defines no demonstrations(seed, p_wrong, p_slip)")
    return module
