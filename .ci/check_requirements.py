"""Check which transformers the tests will import, and that the environment meets that release's requirements.

Usage: python .ci/check_requirements.py "transformers>=5.23,<5.25"

The oldest supported release is installed with ``pip install --no-deps --target`` and put first on PYTHONPATH, so
nothing else checks that the venv's tokenizers, huggingface-hub, safetensors, ... satisfy it. Exits 1 with the
unmet requirements listed.
"""

from __future__ import annotations

import importlib.metadata
import sys

from packaging.requirements import Requirement


def unmet(distribution: importlib.metadata.Distribution) -> list[str]:
    problems = []
    for line in distribution.requires or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement} (installed: {installed})")
    return problems


def main(wanted: str) -> int:
    requirement = Requirement(wanted)
    distribution = importlib.metadata.distribution(requirement.name)
    version = distribution.version
    where = distribution.locate_file("")
    print(f"{requirement.name} {version} from {where}")
    if not requirement.specifier.contains(version, prereleases=True):
        print(f"expected {requirement}, found {version}", file=sys.stderr)
        return 1
    problems = unmet(distribution)
    for problem in problems:
        print(f"unmet requirement of {requirement.name} {version}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
