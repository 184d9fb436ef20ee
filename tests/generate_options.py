"""User-side generate options shared by the composition, loose-verification and fuzz tests: a streamer that records
what it is given, stopping criteria and a logits processor whose effect depends on the sequence length."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.streamers import BaseStreamer


class RecordingStreamer(BaseStreamer):
    """Records every put() (cloned) and counts end(); a put after end() is an error."""

    def __init__(self):
        self.puts: list[torch.Tensor] = []
        self.ends = 0
        self.put_after_end = False

    def put(self, value):
        self.put_after_end |= self.ends > 0
        self.puts.append(value.detach().clone())

    def end(self):
        self.ends += 1

    def new_tokens(self) -> list[int]:
        return [int(t) for put in self.puts[1:] for t in put.reshape(-1)]


class StopAfter(StoppingCriteria):
    """A user criterion: stop once `n` new tokens exist (independent of eos and of max_new_tokens)."""

    def __init__(self, prompt: int, n: int):
        self.limit = prompt + n

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), input_ids.shape[1] >= self.limit, dtype=torch.bool,
                          device=input_ids.device)


class StopOnToken(StoppingCriteria):
    def __init__(self, token: int):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


class BanArgmaxAtEvenLengths(LogitsProcessor):
    """Forbids the current argmax at even lengths, so drafted positions must be processed like generated ones."""

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] % 2 == 0:
            scores = scores.clone()
            scores[:, scores.argmax(dim=-1)] = float("-inf")
        return scores


def assert_same_step_outputs(out, ref, steps: int) -> None:
    """A return_dict_in_generate output has the stock one's type, fields, and per-step scores/logits (shapes,
    dtypes, values); scores are processed and logits raw, so with a processor on the two must differ somewhere."""
    assert type(out) is type(ref)
    assert sorted(k for k, v in out.items() if v is not None) == sorted(k for k, v in ref.items() if v is not None)
    for name in ("scores", "logits"):
        ours, stock = getattr(out, name), getattr(ref, name)
        assert isinstance(ours, tuple) and len(ours) == len(stock) == steps, name
        for step, (a, b) in enumerate(zip(ours, stock)):
            assert a.shape == b.shape and a.dtype == b.dtype, (name, step)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"{name}[{step}]")
    assert any(not torch.equal(a, b) for a, b in zip(out.scores, out.logits)), "scores are processed, logits raw"
