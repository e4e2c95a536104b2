"""A longer, random run of the API schema fuzzing (tests/security/test_schema_fuzz.py); never run by the suite.

The suite runs it derandomized with 3 examples per operation and mode (a few hundred cases per
run); this runs the same tests with more examples and a random (or given) seed, and prints the
seed so a failure can be replayed:

    .venv/bin/python bench/fuzz_api.py                      # 25 examples, a random seed, SQLite
    .venv/bin/python bench/fuzz_api.py --examples 60 --seed 1234 --shrink
    DATABASE_URL=postgres://... .venv/bin/python bench/fuzz_api.py   # PostgreSQL finds what SQLite forgives
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=25, help="per operation and generation mode")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed)")
    parser.add_argument("--shrink", action="store_true", help="let Hypothesis shrink a failing case (slower)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, e.g. -k admin")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    env = {**os.environ, "IMAGINEER_FUZZ_EXAMPLES": str(args.examples), "IMAGINEER_FUZZ_SEED": str(seed)}
    if args.shrink:
        env["IMAGINEER_FUZZ_SHRINK"] = "1"
    print(f"fuzzing with {args.examples} examples per operation and mode, seed {seed} (replay: --seed {seed})")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/security/test_schema_fuzz.py",
        "-k",
        "answered_as_documented",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        *args.pytest_args,
    ]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
