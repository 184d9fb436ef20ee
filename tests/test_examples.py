"""The example scripts and the README's code run, so that neither can rot.

Each family script (examples/<family>.py) runs end to end as a subprocess, as a user would run it, against tiny
random checkpoints of its family saved to a temporary directory (``save_pretrained`` of the model and of the real
processor class) and a real .mp4 written by PyAV. The README's quickstarts are executed as written, with only the
checkpoint names, device, dtype, file name and token budget substituted.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import specvlm_hf
from specvlm_hf.testbed import tiny

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
CLIP_FRAMES, CLIP_FPS = 8, 4.0
# family -> (arguments of its run besides the checkpoints, the video and --max-new-tokens; frames it should sample)
SCRIPTS = {
    "qwen2_5_vl": (["--check-lossless"], CLIP_FRAMES // 2),  # the default 2 fps of a 4 fps clip
    "qwen2_vl": (["--check-lossless", "--num-frames", "6"], 6),
    "qwen3_vl": (["--check-lossless", "--keep-ratio", "0.25"], 6),  # reads the folder of 6 frames at 2 fps
    "llava_onevision": (["--sample", "--seed", "3"], CLIP_FRAMES),  # the default 32 frames, capped at the clip's 8
    "llava_next_video": (["--check-lossless", "--num-frames", "4"], 4),  # the default draft: self
}
FOLDER_FAMILY = "qwen3_vl"


@pytest.fixture(scope="module")
def example_cli():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("example_cli")
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A real .mp4 (mpeg4 in yuv420p) written by PyAV: 8 frames at 4 fps."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return tiny.write_video_file(path, tiny.make_video(CLIP_FRAMES, 112, 112, seed=5), fps=CLIP_FPS)


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The same kind of clip as PNG frames in a folder, and the frames themselves (PNG is lossless)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("frames")
    frames = tiny.make_video(6, 112, 140, seed=9)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    return folder, frames


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """family -> (target dir with its processor, draft dir): tiny random pairs saved like real checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    saved = {}
    for family in SCRIPTS:
        target, draft = tiny.build_tiny_pair(family, seed=0)
        target_dir, draft_dir = root / family / "target", root / family / "draft"
        target.save_pretrained(target_dir)
        tiny.build_processor(family).save_pretrained(target_dir)
        draft.save_pretrained(draft_dir)
        saved[family] = (target_dir, draft_dir)
    return saved


def _environment() -> dict[str, str]:
    """The test's own specvlm_hf first on the path, no hub, one thread (tiny models are overhead-bound)."""
    source = str(Path(specvlm_hf.__file__).resolve().parents[1])
    paths = [source, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def script_runs(checkpoints, clip, frames_folder):
    """Every family script started at once (each run pays the interpreter's import time; they overlap)."""
    runs = {}
    for family, (extra, _) in SCRIPTS.items():
        target_dir, draft_dir = checkpoints[family]
        video = frames_folder[0] if family == FOLDER_FAMILY else clip
        draft = [] if family == "llava_next_video" else ["--draft", str(draft_dir)]
        command = [sys.executable, str(EXAMPLES / f"{family}.py"), "--target", str(target_dir), *draft,
                   "--video", str(video), "--max-new-tokens", "10", "--device", "cpu", "--dtype", "float32", *extra]
        runs[family] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=_environment(), cwd=ROOT)
    yield runs
    for process in runs.values():
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("family", list(SCRIPTS))
def test_family_script_runs_end_to_end(family, script_runs):
    stdout, stderr = script_runs[family].communicate(timeout=600)
    assert script_runs[family].returncode == 0, stderr
    assert "Output: " in stdout and "SpecStats(new_tokens=10," in stdout
    kept, total = map(int, re.search(r"the draft saw (\d+) of (\d+) video tokens", stdout).groups())
    assert 0 < kept < total
    arguments, frames = SCRIPTS[family]
    if "--check-lossless" in arguments:
        assert "Identical to target-only output: yes" in stdout
    else:
        assert "Identical to target-only output" not in stdout
    assert f": {frames} frames of " in stdout


def test_family_scripts_name_real_checkpoints(example_cli):
    expected = {
        "qwen2_5_vl": ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct"),
        "qwen2_vl": ("Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"),
        "qwen3_vl": ("Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-2B-Instruct"),
        "llava_onevision": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"),
        "llava_next_video": ("llava-hf/LLaVA-NeXT-Video-7B-hf", "self"),
    }
    for family, (target, draft) in expected.items():
        module = importlib.import_module(family)
        assert (module.FAMILY.target, module.FAMILY.draft) == (target, draft)
        assert module.FAMILY.model_class.config_class.model_type == family


def test_load_clip_file_and_folder(example_cli, clip, frames_folder, tmp_path):
    frames, metadata = example_cli.load_clip(clip, fps=2.0, num_frames=None)
    assert frames.shape == (CLIP_FRAMES // 2, 112, 112, 3) and frames.dtype == np.uint8
    assert list(metadata.frames_indices) == [0, 2, 4, 6] and metadata.fps == CLIP_FPS
    frames, metadata = example_cli.load_clip(clip, fps=None, num_frames=100)  # capped at the clip's length
    assert len(frames) == CLIP_FRAMES
    folder, written = frames_folder
    frames, metadata = example_cli.load_clip(folder, fps=None, num_frames=None, folder_fps=3.0)
    assert np.array_equal(frames, written)  # every frame, in file-name order, exact
    assert metadata.fps == 3.0 and list(metadata.frames_indices) == list(range(6)) and metadata.width == 140
    frames, metadata = example_cli.load_clip(folder, fps=None, num_frames=3)
    assert np.array_equal(frames, written[[0, 2, 4]])
    matroska = tiny.write_video_file(tmp_path / "clip.mkv", tiny.make_video(4, 56, 56))
    with pytest.raises(SystemExit, match="does not say how many frames"):
        example_cli.load_clip(matroska, fps=2.0, num_frames=None)
    with pytest.raises(SystemExit, match="no such file"):
        example_cli.load_clip(tmp_path / "missing.mp4", fps=2.0, num_frames=None)


def test_arguments(example_cli, capsys):
    from qwen2_5_vl import FAMILY

    args = example_cli.parse_args(FAMILY, "", ["--video", "x.mp4"])
    assert (args.fps, args.num_frames, args.sample, args.keep_ratio) == (2.0, None, False, 0.1)
    args = example_cli.parse_args(FAMILY, "", ["--video", "x.mp4", "--num-frames", "16"])
    assert (args.fps, args.num_frames) == (None, 16)
    with pytest.raises(SystemExit):
        example_cli.parse_args(FAMILY, "", ["--video", "x.mp4", "--sample", "--check-lossless"])
    assert "not seed-identical" in capsys.readouterr().err
    assert example_cli.first_difference(torch.tensor([1, 2, 3]), torch.tensor([1, 5, 3])) == 1
    assert example_cli.first_difference(torch.tensor([1, 2]), torch.tensor([1, 2, 3])) == 2


# -- the README's code ------------------------------------------------------------------------------------------------


def readme_code(heading: str) -> str:
    """The first python block after the README line `heading`."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_readme_links_to_its_own_sections_resolve():
    text = README.read_text()
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}  # GitHub's anchors
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links and not [link for link in links if link not in slugs]
    for path in re.findall(r"\]\(((?:docs|examples|benchmarks|weights)/[^)#]+)\)", text):
        assert (ROOT / path).exists(), path


def substituted(code: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in code, f"the README code no longer contains {old!r}: update this test with it"
        code = code.replace(old, new)
    return code


def run_readme_code(code: str) -> tuple[dict, str]:
    namespace: dict = {}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, str(README), "exec"), namespace)
    return namespace, stdout.getvalue()


def test_readme_quickstart_reads_an_mp4_with_the_video_extra(checkpoints, clip):
    """The README's real-checkpoint quickstart, exactly, on a real .mp4: PyAV decodes it (no torchcodec)."""
    target_dir, draft_dir = checkpoints["qwen2_5_vl"]
    code = substituted(readme_code("## Quickstart"), {
        '"Qwen/Qwen2.5-VL-7B-Instruct"': repr(str(target_dir)),
        '"Qwen/Qwen2.5-VL-3B-Instruct"': repr(str(draft_dir)),
        "torch.bfloat16": "torch.float32",
        'device_map="cuda"': 'device_map="cpu"',
        '"my_clip.mp4"': repr(str(clip)),
        "max_new_tokens=256": "max_new_tokens=12",
    })
    namespace, stdout = run_readme_code(code)
    target, inputs, out = namespace["target"], namespace["inputs"], namespace["out"]
    assert int(inputs["video_grid_thw"][0, 0]) == CLIP_FRAMES // 2 // 2  # 2 fps of a 4 fps clip, 2 frames per patch
    assert float(inputs["second_per_grid_ts"][0]) == 1.0  # the sampled rate (2 fps) reached the processor
    reference = target.generate(**inputs, do_sample=False, max_new_tokens=12)
    assert torch.equal(out, reference)
    assert "SpecStats(new_tokens=12," in stdout


def test_readme_offline_quickstart_runs_from_a_clone(monkeypatch):
    """The README's offline quickstart with the committed testbed pair, from the repository root."""
    if not (ROOT / "weights" / "testbed-target" / "model.safetensors").is_file():
        pytest.skip("the trained testbed weights are not present (they ship with the repository, not the wheel)")
    from specvlm_hf.testbed.train import chat_text
    from specvlm_hf.testbed.vocab import build_processor

    monkeypatch.chdir(ROOT)
    namespace, stdout = run_readme_code(readme_code("## Offline quickstart (the testbed pair, from a clone)"))
    target, inputs, out, sample = namespace["target"], namespace["inputs"], namespace["out"], namespace["sample"]
    # The processor saved with the weights gives the inputs the pair was trained on (and the benchmark uses).
    training_processor = build_processor()
    text = chat_text(training_processor, sample, with_caption=False)
    trained_on = training_processor(text=[text], videos=[sample.frames], return_tensors="pt")
    assert trained_on.keys() == inputs.keys()
    for key in trained_on:
        assert torch.equal(inputs[key], trained_on[key]), key
    assert torch.equal(out, target.generate(**inputs, do_sample=False, max_new_tokens=64))
    stats = specvlm_hf.last_stats(target)
    assert stats.mean_accepted_length > 1.5  # a trained pair: the draft's tokens are accepted
    assert sample.prompt in ("describe the video .", "what happens in the video ?")
    assert "SpecStats(" in stdout and "ground truth:" in stdout
