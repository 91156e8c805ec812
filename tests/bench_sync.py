"""Benchmark (issue 12): OTP against a bare floor widget in one run, one table.

    python3 -m tests.bench_sync [--dossiers 5000] [--wide 1000] [--latency 1.0] [--skip-latency]

See `tests/bench/run.py`. Prints figures (not a test). Needs the built widget
(`python3 build.py`) and Debian chromium.
"""

from tests.bench.run import main

if __name__ == "__main__":
    main()
