"""pytest-benchmark micro-benchmarks: one training step and one greedy generation step,
per backend x cell x mode, at d2l-deep-lstm's shape. Run them with `nox -s microbench`
(or `pytest benchmarks/micro` inside a backend's venv); they are not part of `tests/`.
"""
