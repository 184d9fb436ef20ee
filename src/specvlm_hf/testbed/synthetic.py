"""Synthetic videos with captions whose facts depend on specific video tokens.

Each video shows one or two coloured shapes on a black background. An object starts in one
quadrant and either stays or moves to an adjacent quadrant over the clip. Captions follow a
tiny grammar that mixes *visual facts* (count, colour, shape, position, motion) with *filler*
words that are predictable from the text alone, so that a draft model can guess the filler and
needs the video only for the facts.

Geometry (the defaults, chosen for patch_size 8 and spatial_merge_size 2): a 96x96 frame is a
6x6 grid of 16x16 merged tokens; each quadrant is 48x48 px (3x3 merged tokens) and each object is
32x32 px, i.e. at least 2x2 merged tokens, so one object covers ~11-25% of a frame's tokens and
most tokens are plain background. Everything is deterministic given a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

FRAME_SIZE = 96
OBJECT_SIZE = 32
QUADRANT = FRAME_SIZE // 2
CELL = 16  # one merged video token (patch 8 x merge 2)
TEMPORAL_PATCH = 2  # frames per temporal patch of the vision tower
JITTER_STEPS = (0, CELL)  # object offset inside its quadrant, on the merged-token grid

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 40, 40),
    "green": (40, 220, 40),
    "blue": (60, 90, 255),
    "yellow": (255, 230, 0),
    "white": (255, 255, 255),
}
SHAPES = ("square", "ring", "cross", "triangle")
ROWS = ("top", "bottom")
COLS = ("left", "right")
MOTIONS = ("left", "right", "up", "down", "still")
COUNTS = ("one", "two")

# Two prompts select two caption templates: the filler is then a function of the prompt only.
PROMPTS = ("describe the video .", "what happens in the video ?")

# Words of each slot, used to report per-slot accuracy and chance levels.
SLOT_WORDS: dict[str, tuple[str, ...]] = {
    "count": COUNTS,
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "row": ROWS,
    "col": COLS,
    "motion": MOTIONS,
}


@dataclass(frozen=True)
class SceneObject:
    """One object: appearance, start quadrant, motion and pixel offset inside the quadrant."""

    colour: str
    shape: str
    row: int  # 0 top, 1 bottom (start quadrant)
    col: int  # 0 left, 1 right
    motion: str
    dy: int
    dx: int

    def end_quadrant(self) -> tuple[int, int]:
        """Quadrant (row, col) the object ends in."""
        dr, dc = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0), "still": (0, 0)}[self.motion]
        return self.row + dr, self.col + dc


@dataclass(frozen=True)
class Sample:
    """A rendered video (frames, H, W, 3 uint8), its prompt and its caption words with slot tags."""

    frames: np.ndarray
    objects: tuple[SceneObject, ...]
    prompt: str
    words: tuple[str, ...]
    slots: tuple[str | None, ...]  # slot name per caption word, None for filler

    @property
    def caption(self) -> str:
        """The caption as a plain string (words joined by spaces)."""
        return " ".join(self.words)


def _legal_motions(row: int, col: int) -> list[str]:
    """Motions that keep an object starting at (row, col) inside the frame."""
    out = ["still"]
    out.append("right" if col == 0 else "left")
    out.append("down" if row == 0 else "up")
    return out


def sample_objects(rng: random.Random) -> tuple[SceneObject, ...]:
    """Draw one or two objects with distinct colours, distinct start and end quadrants, no swaps."""
    n = rng.choice((1, 2))
    while True:
        quads = rng.sample([(r, c) for r in range(2) for c in range(2)], n)
        colours = rng.sample(list(COLOURS), n)
        objs = tuple(
            SceneObject(
                colour=colours[i],
                shape=rng.choice(SHAPES),
                row=quads[i][0],
                col=quads[i][1],
                motion=rng.choice(_legal_motions(*quads[i])),
                dy=rng.choice(JITTER_STEPS),
                dx=rng.choice(JITTER_STEPS),
            )
            for i in range(n)
        )
        if n == 1:
            return objs
        a, b = objs
        swap = a.end_quadrant() == (b.row, b.col) and b.end_quadrant() == (a.row, a.col)
        if a.end_quadrant() != b.end_quadrant() and not swap:
            # Canonical order: reading order of the start quadrants, so captions are unique.
            return tuple(sorted(objs, key=lambda o: (o.row, o.col)))


def shape_mask(shape: str, size: int = OBJECT_SIZE) -> np.ndarray:
    """Boolean size x size mask of a shape; the shapes differ at the 8 px patch level."""
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "ring":
        border = size // 4
        return ~((yy >= border) & (yy < size - border) & (xx >= border) & (xx < size - border))
    if shape == "cross":
        lo, hi = size * 3 // 8, size - size * 3 // 8
        return ((yy >= lo) & (yy < hi)) | ((xx >= lo) & (xx < hi))
    if shape == "triangle":
        # Apex at the top centre, base along the bottom edge.
        half = (yy + 1) / 2
        return np.abs(xx + 0.5 - size / 2) <= half
    raise ValueError(f"unknown shape {shape!r}")


def object_box(obj: SceneObject, t: float, frame_size: int = FRAME_SIZE) -> tuple[int, int]:
    """Top-left pixel (y, x) of an object at clip time t in [0, 1].

    The path is linear but snapped to the 16 px merged-token grid, so in every temporal patch an
    object covers exactly 2x2 merged tokens (motion does not smear it over more tokens).
    """
    scale = frame_size / FRAME_SIZE
    quad, step = frame_size // 2, CELL * scale
    er, ec = obj.end_quadrant()
    y0, x0 = obj.row * quad + obj.dy * scale, obj.col * quad + obj.dx * scale
    dy, dx = (er - obj.row) * quad, (ec - obj.col) * quad
    return round(y0 + round(dy * t / step) * step), round(x0 + round(dx * t / step) * step)


def render(objects: tuple[SceneObject, ...], num_frames: int, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Render the clip as uint8 frames (num_frames, H, W, 3); later objects are drawn on top.

    Both frames of a temporal patch (2 frames) show the same scene, one grid step per patch.
    """
    frames = np.zeros((num_frames, frame_size, frame_size, 3), dtype=np.uint8)
    size = OBJECT_SIZE * frame_size // FRAME_SIZE
    groups = -(-num_frames // TEMPORAL_PATCH)
    for obj in objects:
        mask = shape_mask(obj.shape, size)
        colour = np.array(COLOURS[obj.colour], dtype=np.uint8)
        for f in range(num_frames):
            y, x = object_box(obj, (f // TEMPORAL_PATCH) / max(1, groups - 1), frame_size)
            frames[f, y : y + size, x : x + size][mask] = colour
    return frames


def caption_words(objects: tuple[SceneObject, ...], prompt_idx: int) -> tuple[list[str], list[str | None]]:
    """Caption words and their slot tags; the template is chosen by the prompt."""
    words: list[str] = []
    slots: list[str | None] = []

    def put(text: str, slot: str | None = None) -> None:
        for w in text.split():
            words.append(w)
            slots.append(slot)

    n = len(objects)
    plural = "objects" if n > 1 else "object"
    if prompt_idx == 0:
        put("the video shows")
        put(COUNTS[n - 1], "count")
        put(f"{plural} .")
        for o in objects:
            put("the")
            put(o.colour, "colour")
            put(o.shape, "shape")
            put("starts at the")
            put(ROWS[o.row], "row")
            put(COLS[o.col], "col")
            put("and")
            put("stays still" if o.motion == "still" else f"moves {o.motion}", "motion")
            put(".")
    else:
        put("i see")
        put(COUNTS[n - 1], "count")
        put(f"{plural} .")
        for o in objects:
            put("a")
            put(o.colour, "colour")
            put(o.shape, "shape")
            put("in the")
            put(ROWS[o.row], "row")
            put(COLS[o.col], "col")
            put("corner")
            put("that")
            put("stays still" if o.motion == "still" else f"moves {o.motion}", "motion")
            put(".")
    return words, slots


def make_sample(seed: int, num_frames: int = 8, frame_size: int = FRAME_SIZE) -> Sample:
    """Build one deterministic sample from an integer seed."""
    rng = random.Random(seed)
    objects = sample_objects(rng)
    prompt_idx = rng.randrange(len(PROMPTS))
    words, slots = caption_words(objects, prompt_idx)
    return Sample(
        frames=render(objects, num_frames, frame_size),
        objects=objects,
        prompt=PROMPTS[prompt_idx],
        words=tuple(words),
        slots=tuple(slots),
    )


def caption_vocabulary() -> list[str]:
    """Every word a caption or prompt can contain (for the word-level tokenizer)."""
    words: set[str] = set()
    for p in PROMPTS:
        words.update(p.split())
    for slot_words in SLOT_WORDS.values():
        words.update(slot_words)
    for n in (1, 2):
        objs = tuple(SceneObject("red", "square", 0, c, "still", 0, 0) for c in range(n))
        for prompt_idx in range(len(PROMPTS)):
            words.update(caption_words(objs, prompt_idx)[0])
    words.update(["moves", "stays"])
    return sorted(words)


def recover_facts(frames: np.ndarray) -> list[dict[str, str]]:
    """Recompute each object's facts from the first and last rendered frames (for tests).

    Objects have distinct colours, so each colour present in the first frame is one object; its
    shape is the mask inside its bounding box, its quadrants come from the box centres.
    """
    first, last = frames[0].astype(int), frames[-1].astype(int)
    size = first.shape[0]
    facts = []
    for name, rgb in COLOURS.items():
        m0 = np.all(first == rgb, axis=-1)
        m1 = np.all(last == rgb, axis=-1)
        if not m0.any():
            continue
        ys, xs = np.nonzero(m0)
        box = m0[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        side = OBJECT_SIZE * size // FRAME_SIZE
        # Pad a clipped bounding box (triangle apex row is narrow but present) to the object size.
        full = np.zeros((side, side), dtype=bool)
        full[: box.shape[0], : box.shape[1]] = box
        shape = max(SHAPES, key=lambda s: int((shape_mask(s, side) == full).sum()))
        cy0, cx0 = ys.min() + side / 2, xs.min() + side / 2
        ys1, xs1 = np.nonzero(m1)
        cy1, cx1 = ys1.min() + side / 2, xs1.min() + side / 2
        r0, c0, r1, c1 = int(cy0 >= size / 2), int(cx0 >= size / 2), int(cy1 >= size / 2), int(cx1 >= size / 2)
        motion = {(0, 0): "still", (0, 1): "right", (0, -1): "left", (1, 0): "down", (-1, 0): "up"}[(r1 - r0, c1 - c0)]
        facts.append({"colour": name, "shape": shape, "row": ROWS[r0], "col": COLS[c0], "motion": motion})
    facts.sort(key=lambda f: (ROWS.index(f["row"]), COLS.index(f["col"])))
    return facts


FACT_SLOTS = ("colour", "shape", "row", "col", "motion")  # per object; plus one "count" per caption


def caption_facts(words: list[str] | tuple[str, ...] | str) -> dict:
    """Parse a (generated) caption into its stated facts, following the caption grammar of `caption_words`.

    Returns ``{"count": str | None, "objects": [{"colour", "shape", "row", "col", "motion"}, ...]}`` (a slot the
    caption does not state is None). Deterministic and tolerant: the count is the first count word; the caption is
    split into sentences at "." and every sentence that names an object slot is one object, in order. Within a
    sentence each slot is its first word from the slot's vocabulary, except that the column is read before the motion
    phrase ("moves X" gives motion X; "stays still" gives "still"), since "left"/"right" are both columns and motions.
    """
    if isinstance(words, str):
        words = words.split()
    words = [w.lower() for w in words]
    count = next((w for w in words if w in COUNTS), None)
    sentences: list[list[str]] = [[]]
    for w in words:
        if w == ".":
            sentences.append([])
        else:
            sentences[-1].append(w)
    objects = []
    for sentence in sentences:
        motion_at = next((i for i, w in enumerate(sentence) if w in ("moves", "stays")), len(sentence))
        motion = None
        if motion_at < len(sentence):
            following = sentence[motion_at + 1] if motion_at + 1 < len(sentence) else None
            if sentence[motion_at] == "moves" and following in MOTIONS and following != "still":
                motion = following
            elif sentence[motion_at] == "stays" and following == "still":
                motion = "still"
        before = sentence[:motion_at]
        facts = {
            "colour": next((w for w in sentence if w in COLOURS), None),
            "shape": next((w for w in sentence if w in SHAPES), None),
            "row": next((w for w in before if w in ROWS), None),
            "col": next((w for w in before if w in COLS), None),
            "motion": motion,
        }
        if any(v is not None for v in facts.values()):
            objects.append(facts)
    return {"count": count, "objects": objects}


def fact_score(generated: list[str] | tuple[str, ...] | str, reference: list[str] | tuple[str, ...] | str
               ) -> tuple[int, int]:
    """(correct, total) ground-truth facts of `reference` that `generated` states correctly.

    The facts are the count plus colour/shape/row/col/motion of every reference object; generated objects are matched
    to reference objects by order (`caption_facts`). Extra generated objects add nothing (and cost nothing beyond a
    wrong count).
    """
    truth, said = caption_facts(reference), caption_facts(generated)
    total = 1 + len(FACT_SLOTS) * len(truth["objects"])
    correct = int(truth["count"] is not None and said["count"] == truth["count"])
    for i, obj in enumerate(truth["objects"]):
        if i < len(said["objects"]):
            correct += sum(said["objects"][i][k] == obj[k] for k in FACT_SLOTS)
    return correct, total
