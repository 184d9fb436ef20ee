"""specvlm-hf: verifier-guided video-token pruning for speculative decoding of video LLMs in transformers.

    import specvlm_hf
    out = target.generate(**inputs, assistant_model=draft, video_pruning=specvlm_hf.PruneConfig(keep_ratio=0.1))

Importing the package registers the ``video_pruning`` generate kwarg (calls without it are untouched). The draft
sees only the video tokens chosen by the target's own attention (Stage I) plus an even spatial spread
(Stage II); the target verifies every token, so greedy output equals ``target.generate`` alone.
"""

# First, before anything imports transformers internals: an untested release gets a clear error, not an ImportError.
from .versions import check_transformers_version, package_version

check_transformers_version()

from .config import PruneConfig  # noqa: E402
from .families import FAMILIES  # noqa: E402
from .integration import is_registered, register, unregister  # noqa: E402
from .pruning import select_video_tokens  # noqa: E402
from .stats import SpecStats, last_stats  # noqa: E402
from .verification import word_token_ids  # noqa: E402

__version__ = package_version()  # written once, in pyproject.toml

__all__ = [
    "FAMILIES",
    "PruneConfig",
    "SpecStats",
    "check_transformers_version",
    "is_registered",
    "last_stats",
    "register",
    "select_video_tokens",
    "unregister",
    "word_token_ids",
]

register()
