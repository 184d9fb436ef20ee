"""The supported transformers range: written once (pyproject.toml), checked at import before any transformers internal
is touched, and every difference between the supported releases handled in `specvlm_hf.compat` (the cache rename of
5.24) without deprecation warnings from our own calls."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from packaging.requirements import Requirement
from packaging.version import Version
from transformers import DynamicCache, StaticCache

import specvlm_hf
from specvlm_hf import PruneConfig, check_transformers_version, compat, versions
from specvlm_hf.candidate import PrunedVideoCandidateGenerator
from specvlm_hf.testbed import tiny

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = Path(specvlm_hf.__file__).resolve().parents[1]  # the directory `import specvlm_hf` resolved from
TESTED = versions.tested_transformers()


def pyproject_transformers_requirement() -> Requirement:
    tomllib = pytest.importorskip("tomllib")
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in dependencies if Requirement(d).name == "transformers")


def bound(operator: str) -> Version:
    return next(Version(s.version) for s in TESTED if s.operator == operator)


def test_the_range_is_the_one_written_in_pyproject():
    assert TESTED == pyproject_transformers_requirement().specifier
    assert TESTED.contains(Version(transformers.__version__).base_version, prereleases=True)


def test_the_package_version_is_the_one_written_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    written = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert specvlm_hf.__version__ == written == versions.package_version()


def test_versions_inside_the_range_pass():
    low = bound(">=")
    for version in (str(low), f"{low}.1", f"{low}rc1", transformers.__version__):
        check_transformers_version(version)


@pytest.mark.parametrize("where", ["below", "at_the_upper_bound", "dev_build_of_the_upper_bound", "next_major"])
def test_versions_outside_the_range_get_a_clear_error(where, monkeypatch):
    monkeypatch.delenv(versions.ALLOW_UNTESTED_ENV, raising=False)
    low, high = bound(">="), bound("<")
    version = {
        "below": f"{low.major}.{low.minor - 1}.0",
        "at_the_upper_bound": f"{high}.0",
        "dev_build_of_the_upper_bound": f"{high}.0.dev0",
        "next_major": f"{high.major + 1}.0.0",
    }[where]
    with pytest.raises(RuntimeError) as error:
        check_transformers_version(version)
    message = str(error.value)
    assert f"transformers {version} is installed" in message
    assert f"pip install 'transformers>={low},<{high}'" in message


def test_the_override_warns_instead_of_raising(monkeypatch):
    monkeypatch.setenv(versions.ALLOW_UNTESTED_ENV, "1")
    with pytest.warns(UserWarning, match="transformers 4.0.0 is installed.*continuing"):
        check_transformers_version("4.0.0")


def fake_transformers(root: Path, version: str) -> Path:
    """A transformers 'release' whose import fails like a moved private name (a bare KeyError)."""
    package = root / "transformers"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise KeyError('a private name that moved')\n")
    info = root / f"transformers-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: transformers\nVersion: {version}\n")
    return root


def import_package_with(fake: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(PACKAGE_ROOT)])}
    environment.pop(versions.ALLOW_UNTESTED_ENV, None)
    return subprocess.run([sys.executable, "-c", "import specvlm_hf"], capture_output=True, text=True,
                          env=environment, timeout=120)


@pytest.mark.parametrize("version", ["5.22.0", "99.0.0"])
def test_an_untested_release_fails_at_import_with_the_friendly_error(tmp_path, version):
    done = import_package_with(fake_transformers(tmp_path, version))
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr and f"transformers {version} is installed" in done.stderr
    assert f"pip install 'transformers>={bound('>=')},<{bound('<')}'" in done.stderr
    assert "KeyError" not in done.stderr, "the check must run before anything imports transformers"


def test_the_fake_release_would_fail_with_a_bare_error_without_the_check(tmp_path):
    """Control for the test above: inside the range the import reaches the fake transformers and dies bare."""
    done = import_package_with(fake_transformers(tmp_path, str(bound(">="))))
    assert done.returncode != 0 and "KeyError: 'a private name that moved'" in done.stderr


# -- what differs between the supported releases ---------------------------------------------------------------------


def test_compat_names_the_cache_as_the_installed_release_does():
    renamed = Version(transformers.__version__).release >= (5, 24)
    assert compat.CACHE_KEY == ("cache" if renamed else "past_key_values")
    assert "past_key_values" in compat.GENERATE_CACHE_KWARGS and compat.CACHE_KEY in compat.GENERATE_CACHE_KWARGS


@pytest.fixture(scope="module")
def pair_and_inputs():
    target, draft = tiny.build_tiny_pair("qwen2_5_vl", seed=0)
    processor = tiny.build_processor("qwen2_5_vl")
    inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=4, height=56, width=56))
    return target, draft, inputs, processor.tokenizer


@pytest.mark.parametrize("verify", ["strict", "loose"])
def test_no_deprecation_warning_from_our_calls(pair_and_inputs, verify):
    """Our forwards, model kwargs and outputs use the installed release's cache name (5.24 warns on the old one)."""
    target, draft, inputs, tokenizer = pair_and_inputs
    # relax_ratio=0, shift_window=0: the owned loop with the strict rule, so that the output is checked too.
    loose = {"relax_ratio": 0.0, "shift_window": 0} if verify == "loose" else {}
    config = PruneConfig(keep_ratio=0.25, num_draft_tokens=3, verify=verify, **loose)
    options = {"tokenizer": tokenizer} if verify == "loose" else {}
    reference = target.generate(**inputs, max_new_tokens=8, do_sample=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = target.generate(**inputs, assistant_model=draft, video_pruning=config, max_new_tokens=8,
                              do_sample=False, **options)
    assert torch.equal(out, reference)
    deprecations = [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not deprecations


@pytest.mark.parametrize("name", compat.GENERATE_CACHE_KWARGS)
def test_a_static_cache_is_rejected_under_every_cache_name(pair_and_inputs, name):
    """5.24's stock loop no longer rejects static caches up front; ours still does, before any forward."""
    target, draft, inputs, _ = pair_and_inputs
    cache = StaticCache(config=target.config.get_text_config(), max_cache_len=512)
    with pytest.raises(ValueError, match=f"dynamic cache.*`{name}`"):
        target.generate(**inputs, assistant_model=draft, video_pruning=PruneConfig(), max_new_tokens=4,
                        **{name: cache})
    assert cache.get_seq_length() == 0


@pytest.mark.parametrize("name", compat.GENERATE_CACHE_KWARGS)
def test_a_prefilled_cache_is_rejected_under_every_cache_name(pair_and_inputs, name):
    target, draft, inputs, _ = pair_and_inputs
    cache = DynamicCache(config=target.config.get_text_config())
    with torch.no_grad():
        target(input_ids=inputs["input_ids"][:, :3], use_cache=True, **{compat.CACHE_KEY: cache})
    with pytest.raises(ValueError, match=f"`{name}` already holds tokens"):
        target.generate(**inputs, assistant_model=draft, video_pruning=PruneConfig(), max_new_tokens=4,
                        **{name: cache})


def test_the_generator_tells_the_stock_loop_how_many_tokens_it_drafts(pair_and_inputs, monkeypatch):
    """transformers 5.25's `_assisted_decoding` reads `candidate_generator.num_drafting_tokens` (AttributeError
    without it); it must be the PruneConfig's gamma."""
    target, draft, inputs, _ = pair_and_inputs
    seen = []
    close = PrunedVideoCandidateGenerator.close

    def record(self):
        seen.append(self.num_drafting_tokens)
        close(self)

    monkeypatch.setattr(PrunedVideoCandidateGenerator, "close", record)
    target.generate(**inputs, assistant_model=draft, video_pruning=PruneConfig(num_draft_tokens=4), max_new_tokens=4,
                    do_sample=False)
    assert seen == [4]
