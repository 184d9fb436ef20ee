"""The owned loop's commit rule (`decoding._tokens_to_commit`) on hand-built blocks: nothing is committed past an
accepted drafted token at which generation stops, not even the bonus; the stopping criteria see what generation token
by token would show them."""

from __future__ import annotations

import torch
from generate_options import StopOnToken
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria

from specvlm_hf.decoding import _tokens_to_commit
from specvlm_hf.verification import SAMPLED, BlockVerdict

PROMPT = [1, 2]
STOP = 9


def commit(drafted: list[int], accepted: int, bonus: int, criteria, *, scores=None, max_length: int = 100):
    candidates = torch.tensor([PROMPT + drafted])
    processed = torch.arange(float(len(drafted) + 1))[None, :, None].expand(1, -1, 4)  # row i holds the value i
    tokens, accepted, stopped = _tokens_to_commit(candidates, len(PROMPT), BlockVerdict([SAMPLED] * accepted, bonus),
                                                  processed, StoppingCriteriaList(criteria), scores, max_length)
    return tokens[0].tolist(), accepted, stopped


def test_an_accepted_stop_token_ends_the_block_without_a_bonus():
    assert commit([5, STOP], 2, 7, [StopOnToken(STOP)]) == ([5, STOP], 2, True)
    assert commit([5, STOP], 2, 7, [EosTokenCriteria(STOP)]) == ([5, STOP], 2, True)
    assert commit([STOP, 6], 2, 7, [StopOnToken(STOP)]) == ([STOP], 1, True)  # a stop inside a block, too


def test_without_a_stop_the_bonus_follows_the_accepted_tokens():
    assert commit([5, 6], 2, 7, [StopOnToken(STOP)]) == ([5, 6, 7], 2, False)
    assert commit([5, STOP], 1, 7, [StopOnToken(STOP)]) == ([5, 7], 1, False)  # the stop token was rejected
    assert commit([], 0, STOP, [StopOnToken(STOP)]) == ([STOP], 0, False)  # the loop checks the bonus itself


def test_max_length_cuts_the_block():
    assert commit([5, 6], 2, 7, [], max_length=4) == ([5, 6], 2, False)
    assert commit([5, 6], 2, 7, [MaxLengthCriteria(3)], max_length=3) == ([5], 1, True)


def test_criteria_see_the_scores_generation_would_pass():
    class Recording(StoppingCriteria):
        def __init__(self):
            self.seen = []

        def __call__(self, input_ids, scores, **kwargs):
            self.seen.append((input_ids.shape[1], None if scores is None else [float(s[0, 0]) for s in scores]))
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    recording = Recording()
    commit([5, 6], 2, 7, [recording], scores=(torch.full((1, 4), -1.0),))
    # After each accepted drafted token: the scores recorded so far plus the rows that produced this block's tokens.
    assert recording.seen == [(3, [-1.0, 0.0]), (4, [-1.0, 0.0, 1.0])]
    recording = Recording()
    commit([5, 6], 2, 7, [recording])
    assert recording.seen == [(3, None), (4, None)]
