"""`benchmarks/bench.py`: the harness runs for a couple of steps and reports every figure (timings are
not asserted: they depend on the machine and its load). TRL parts are skipped without trl."""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # noqa: E402  (benchmarks/ is not part of the wheel)

SHORT = bench.CONFIGS["short"]
SIDE_FIELDS = {"median_step_s", "completions_per_s", "tokens_per_s", "steps_timed", "peak_rss_mib",
               "rss_growth_mib", "model", "prompt_tokens"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy():
    policy, _ = bench.bench_policy("tiny", "cpu", seed=0)
    return policy


def test_floor_fields():
    floor = bench.run_floor(SHORT, repeats=2)
    for key in ("train_step_s", "prefill_s", "decode_step_s", "floor_step_s", "floor_completions_per_s"):
        assert floor[key] > 0, key
    assert floor["decode_steps"] == SHORT.max_new_tokens - 1
    expected = floor["train_step_s"] + floor["prefill_s"] + floor["decode_steps"] * floor["decode_step_s"]
    assert floor["floor_step_s"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("variant", ["labkit", "reference"])
def test_labkit_side_fields_and_forced_length(variant):
    result = bench.run_labkit(SHORT, steps=2, warmup=0, variant=variant)
    assert SIDE_FIELDS <= set(result)
    assert result["steps_timed"] == 2
    assert result["completion_len_mean"] == SHORT.max_new_tokens  # EOS suppressed: full length
    assert result["completions_per_s"] == pytest.approx(64 / result["median_step_s"], rel=1e-2)


def test_eos_suppression_is_removable(policy):
    handle = bench.suppress_eos(policy.model, policy.tokenizer.eos_token_id)
    ids = torch.tensor([[policy.tokenizer.bos_token_id]])
    with torch.no_grad():
        suppressed = policy.model(input_ids=ids).logits[0, -1]
        handle.remove()
        plain = policy.model(input_ids=ids).logits[0, -1]
    eos = policy.tokenizer.eos_token_id
    assert suppressed[eos] == pytest.approx(plain[eos].item() + bench.EOS_PENALTY)
    assert torch.isfinite(suppressed).all()


def test_main_json_without_trl(capsys):
    rc = bench.main(["--config", "short", "--steps", "2", "--warmup", "0", "--inprocess", "--no-trl", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    (result,) = out["results"]
    assert result["config"] == "short" and result["threads"] == 1
    assert result["labkit"]["step_over_floor"] > 0
    assert "trl" not in result and "labkit_over_trl_completions_per_s" not in result
    assert len(result["load_avg_before"]) == 3


def test_table_renders():
    result = {"config": "short", "threads": 1, "load_avg_before": [0.5, 0.5, 0.5], "load_avg_after": [0.6, 0.5, 0.5],
              "labkit_over_trl_completions_per_s": 1.2,
              "labkit": {"median_step_s": 0.1, "completions_per_s": 640.0, "step_over_floor": 1.1,
                         "peak_rss_mib": 500.0, "rss_growth_mib": 1.0},
              "trl": {"median_step_s": 0.12, "completions_per_s": 533.3, "step_over_floor": 1.3,
                      "peak_rss_mib": 600.0, "rss_growth_mib": 2.0},
              "floor": {"floor_step_s": 0.09, "floor_completions_per_s": 711.1, "train_step_s": 0.06,
                        "prefill_s": 0.01, "decode_steps": 5, "decode_step_s": 0.004}}
    text = bench.table([result])
    assert "| short | labkit | 0.1000 | 640.0 | 1.20x |" in text and "| short | floor |" in text


def test_bad_arguments():
    assert bench.main(["--steps", "0"]) == 2
    with pytest.raises(SystemExit):
        bench.main(["--config", "huge"])


def test_trl_side_fields():
    pytest.importorskip("trl")
    result = bench.run_trl(SHORT, steps=2, warmup=1)
    assert SIDE_FIELDS <= set(result)
    assert result["steps_timed"] == 2
    assert result["median_generate_s"] > 0
