"""The transformers releases specvlm-hf is tested with, checked before anything imports transformers internals.

We rely on private generation internals (docs/design.md §3), so only tested releases are accepted. The range is
written once, as the ``transformers`` requirement in pyproject.toml; this module reads it back from the package
metadata (or, in a source checkout, from that pyproject.toml itself: an editable install's metadata is a snapshot
taken at install time, possibly of another checkout). It imports neither transformers nor anything of ours, so
``specvlm_hf/__init__.py`` runs the check first: an untested release gets this error instead of a bare
``ImportError``/``KeyError`` from a moved private name.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

DISTRIBUTION = "specvlm-hf"
# Set to 1 to import specvlm-hf with an untested transformers anyway (a warning instead of the error).
ALLOW_UNTESTED_ENV = "SPECVLM_HF_ALLOW_UNTESTED_TRANSFORMERS"


def _source_checkout_project() -> dict | None:
    """The ``[project]`` table of the pyproject.toml of the source checkout this file sits in (src layout), if any."""
    package_dir = Path(__file__).resolve().parent
    pyproject = package_dir.parent.parent / "pyproject.toml"
    if package_dir.parent.name != "src" or not pyproject.is_file():
        return None
    try:
        import tomllib  # Python >= 3.11; on 3.10 the installed metadata is used
    except ModuleNotFoundError:
        return None
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    return project if project.get("name") == DISTRIBUTION else None


def _source_checkout_requirements() -> list[str] | None:
    """The dependencies of the source checkout's pyproject.toml, if this file sits in one."""
    project = _source_checkout_project()
    return None if project is None else list(project.get("dependencies", []))


def package_version() -> str:
    """specvlm-hf's own version, written once in pyproject.toml (read back like the transformers range)."""
    project = _source_checkout_project()
    if project is not None and "version" in project:
        return str(project["version"])
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _requirements() -> list[str]:
    source = _source_checkout_requirements()
    if source is not None:
        return source
    try:
        return importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []


def tested_transformers() -> SpecifierSet | None:
    """The tested transformers range (from pyproject.toml), or None if specvlm-hf's metadata cannot be found."""
    for line in _requirements():
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == "transformers" and requirement.marker is None:
            return requirement.specifier
    return None


def _readable(specifier: SpecifierSet) -> str:
    """``>=5.23,<5.25`` (lower bounds first; SpecifierSet's own str() sorts them the other way)."""
    return ",".join(str(s) for s in sorted(specifier, key=lambda s: (not s.operator.startswith(">"), str(s))))


def installed_transformers() -> str:
    """The installed transformers version, read without importing transformers."""
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        import transformers  # a source tree without metadata: its public version string

        return transformers.__version__


def check_transformers_version(version: str | None = None) -> None:
    """Raise ``RuntimeError`` if `version` (default: the installed transformers) is outside the tested range.

    The error names the installed version and the pip command that installs a tested one. With the environment
    variable ``SPECVLM_HF_ALLOW_UNTESTED_TRANSFORMERS=1`` it warns instead (at your own risk: an untested release
    may change the internals we rely on, and with them the losslessness guarantee).
    """
    installed = Version(version or installed_transformers())
    tested = tested_transformers()
    # Release candidates and dev builds count as their release (5.24.0rc1 is 5.24.0).
    if tested is None or tested.contains(installed.base_version, prereleases=True):
        return
    pip = f"pip install 'transformers{_readable(tested)}'"
    message = (
        f"specvlm-hf relies on private transformers generation internals and is tested with "
        f"transformers{_readable(tested)}, but transformers {installed} is installed. Install a tested version: "
        f"{pip}"
    )
    if os.environ.get(ALLOW_UNTESTED_ENV) == "1":
        warnings.warn(f"{message} (continuing because {ALLOW_UNTESTED_ENV}=1).", UserWarning, stacklevel=2)
        return
    raise RuntimeError(f"{message} (or set {ALLOW_UNTESTED_ENV}=1 to try it at your own risk).")
