"""The specvlm-hf benchmark: every decoding method side by side on the same inputs, every output checked.

    python -m specvlm_hf.bench --out benchmarks          # the default testbed benchmark (make bench)

Modules, one job each:

* ``inputs``   -- benchmark inputs: synthetic testbed videos or a folder of video files (PyAV), through the processor.
* ``methods``  -- the decoding methods (AR, stock assisted, full-video / pruned / self speculation) and one timed run.
* ``measure``  -- side measurements: verifier attention concentration, single-token decode-step cost.
* ``runner``   -- the interleaved per-sample loop with the token-for-token check against AR.
* ``summary``  -- per-method aggregates and paired bootstrap confidence intervals.
* ``claims``   -- the paper's claims (a)-(d) and the issue's targets: holds / does not hold, with our numbers.
* ``report``   -- RESULTS.md (tables, evidence table, environment) and the PNG plots.
"""
