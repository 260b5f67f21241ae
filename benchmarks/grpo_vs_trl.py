"""labkit's GRPO step against TRL's GRPOTrainer and the floor: the same as `labkit bench`.

    python benchmarks/grpo_vs_trl.py --reference --rounds 3   # the table in benchmarks/README.md
    python benchmarks/grpo_vs_trl.py --config long --json

TRL is the optional `bench` extra (pip install -e ".[bench]"); without it only labkit and the
floor are timed. See benchmarks/bench.py for what is measured and how both sides are configured.
"""
import sys

from bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
