"""Every difference between the supported transformers releases (the range in pyproject.toml), in one place.

transformers 5.24 renamed the cache ``past_key_values`` -> ``cache`` in ``generate``, model forwards, the model
kwargs of the generation loops and model outputs (the old name still works there until 5.40/6.0, with a
``FutureWarning`` per call); 5.23 knows only ``past_key_values``. The rest of the package reads the cache through
these names and never branches on a version.
"""

from __future__ import annotations

import inspect
from typing import Any

from transformers.generation.utils import GenerationMixin

# The name generate's model kwargs, model forwards and their outputs use for the cache in the installed release.
CACHE_KEY = (
    "cache" if "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    else "past_key_values"
)
# The names generate() accepts a cache under (5.24 still accepts the deprecated one).
GENERATE_CACHE_KWARGS = tuple(dict.fromkeys(("past_key_values", CACHE_KEY)))


def output_cache(outputs: Any) -> Any:
    """The cache of a model output (``outputs.cache`` on 5.24, ``outputs.past_key_values`` on 5.23)."""
    return getattr(outputs, CACHE_KEY)


def passed_cache(named: dict[str, Any]) -> tuple[str, Any]:
    """``(name, cache)`` of the cache a caller passed to generate() (``(CACHE_KEY, None)`` if none)."""
    for name in GENERATE_CACHE_KWARGS:
        if named.get(name) is not None:
            return name, named[name]
    return CACHE_KEY, None
