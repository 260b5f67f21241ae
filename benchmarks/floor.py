"""The floor alone: plain calls of the same model on the same token counts, per configuration.

    python benchmarks/floor.py [--threads 1] [--repeats 20]

floor = one forward+backward+AdamW step over 8 x 8 x (prompt + completion) tokens
      + one prefill of the 64 prompts + (completion length - 1) cached one-token decode steps.
"""
import argparse
import json

import torch

from bench import CONFIGS, load_avg, run_floor


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {name: run_floor(config, repeats=args.repeats, model=args.model) for name, config in CONFIGS.items()}
    print(json.dumps({"threads": args.threads, "load_avg": load_avg(), "floor": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
