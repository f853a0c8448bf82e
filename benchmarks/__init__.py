"""strongroom's benchmarks: each measures our code against the floor it cannot beat, in one run.

Run them all with `python -m benchmarks.run`; see docs/performance.md for the latest figures.
"""
