"""`labkit pretrain`: noisy demonstrations, reproducibility, refusing to clobber a checkpoint."""
import random

import pytest
import torch
from safetensors.torch import load_file

from labkit.bases.mixtures import load_mixture, mixture_names
from labkit.bases.mixtures.default import demonstrations as demonstration_stream
from labkit.bases.pretrain import demonstration, main, near_miss, pretrain
from labkit.core.tasks import make_tasks, verify


def test_noise_is_what_the_verifier_rejects():
    rng = random.Random(0)
    tasks = make_tasks("add", 2, 200, seed=5)
    clean = [demonstration(t, rng, p_wrong=0.0, p_slip=0.0) for t in tasks]
    assert all(verify(t, c).correct for t, c in zip(tasks, clean))
    wrong = [demonstration(t, rng, p_wrong=1.0, p_slip=0.0) for t in tasks]
    assert not any(verify(t, c).correct for t, c in zip(tasks, wrong))
    assert all(verify(t, c).format_ok for t, c in zip(tasks, wrong))  # near misses are well-formed
    slips = [demonstration(t, rng, p_wrong=0.0, p_slip=1.0) for t in tasks]
    assert not any(verify(t, c).format_ok for t, c in zip(tasks, slips))  # slips are format errors


def test_near_miss_differs_and_keeps_length():
    rng = random.Random(1)
    for answer in ["7", "10", "-81", "123456"]:
        miss = near_miss(answer, rng)
        assert miss != answer and len(miss) == len(answer) and not miss.startswith("0")


def test_stream_is_deterministic_from_seed():
    first = demonstration_stream(3, 0.15, 0.15)
    second = demonstration_stream(3, 0.15, 0.15)
    assert [next(first) for _ in range(50)] == [next(second) for _ in range(50)]


def test_same_seed_same_checkpoint(tmp_path):
    for name in ("a", "b"):
        pretrain("tiny", steps=3, batch_size=8, seed=0, out=tmp_path / name, threads=1, log_every=1)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_refuses_to_overwrite_and_rejects_bad_values(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--steps", "1"])
    assert "already holds a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "new"), "--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "new"), "--p-wrong", "0.8", "--p-slip", "0.5"])
    assert "sum to at most 1" in capsys.readouterr().err


def test_mixtures_are_discovered_and_unknown_names_are_refused():
    assert "default" in mixture_names()
    stream = load_mixture("default").demonstrations(0, 0.0, 0.0)
    prompt, completion = next(stream)
    assert isinstance(prompt, str) and isinstance(completion, str) and completion
    with pytest.raises(ValueError, match="unknown pretraining mixture 'nope'; accepted: .*default"):
        load_mixture("nope")


def test_cli_rejects_an_unknown_mixture(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "m"), "--mixture", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
