"""Run.checkpoint / Run.resume: a training loop stopped and resumed ends exactly where an
uninterrupted one does (weights, optimizer state, and every RNG draw after it)."""
import json
import random

import numpy as np
import pytest
import torch

from labkit.core.checks import ParameterError
from labkit.lab import session
from labkit.lab.cli import main
from labkit.lab.runs import resume_spec


def _fresh(tmp_path, monkeypatch, name, scale="smoke"):
    """What a (new) kernel does: setup (which seeds everything), then build model and optimizer."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / name))
    run = session.setup(scale=scale, seed=0, device="cpu")
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    return run, model, opt


def _train(run, model, opt, start, stop, every, gen=None):
    for step in range(start, stop):
        x = torch.randn(16, 4)                                  # torch's global RNG
        target = np.random.rand() + random.random()             # numpy's and python's
        if gen is not None:
            x = x + torch.rand(16, 4, generator=gen)            # a generator of the loop's own
        loss = ((model(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if gen is None:
            run.checkpoint(step, every=every, model=model, optimizer=opt)
        else:
            run.checkpoint(step, every=every, model=model, optimizer=opt, gen=gen)


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def test_three_steps_resume_three_steps_equals_six_straight(tmp_path, monkeypatch):
    run, model, opt = _fresh(tmp_path, monkeypatch, "straight")
    gen = torch.Generator().manual_seed(11)
    _train(run, model, opt, 0, 6, every=0, gen=gen)
    straight = [p.detach().clone() for p in model.parameters()], _draws(), gen.get_state()
    assert not (run.dir / "checkpoints").exists()

    run, model, opt = _fresh(tmp_path, monkeypatch, "stopped")
    gen = torch.Generator().manual_seed(11)
    _train(run, model, opt, 0, 3, every=3, gen=gen)             # saves after step 2, then "dies"
    assert [p.name for p in (run.dir / "checkpoints").iterdir()] == ["step-2.pt"]
    torch.manual_seed(99), np.random.seed(99), random.seed(99)   # whatever the old kernel did next

    run, model, opt = _fresh(tmp_path, monkeypatch, "stopped")   # labkit run --resume: a new kernel
    gen = torch.Generator().manual_seed(11)
    start = run.resume(model=model, optimizer=opt, gen=gen)
    assert start == 3
    _train(run, model, opt, start, 6, every=3, gen=gen)
    weights, draws, gen_state = [p.detach() for p in model.parameters()], _draws(), gen.get_state()

    assert all(torch.equal(a, b) for a, b in zip(straight[0], weights))
    assert draws == straight[1]
    assert torch.equal(gen_state, straight[2])
    assert sorted(p.name for p in (run.dir / "checkpoints").iterdir()) == ["step-2.pt", "step-5.pt"]


def test_without_the_optimizer_state_the_weights_differ(tmp_path, monkeypatch):
    """The check above has teeth: Adam's moments matter, and they come back from the file."""
    run, model, opt = _fresh(tmp_path, monkeypatch, "straight")
    _train(run, model, opt, 0, 6, every=0)
    straight = [p.detach().clone() for p in model.parameters()]
    run, model, opt = _fresh(tmp_path, monkeypatch, "stopped")
    _train(run, model, opt, 0, 3, every=3)
    run, model, opt = _fresh(tmp_path, monkeypatch, "stopped")
    start = run.resume(model=model)                              # the optimizer starts afresh
    _train(run, model, opt, start, 6, every=0)
    assert not all(torch.equal(a, b) for a, b in zip(straight, model.parameters()))


def test_defaults_off_at_smoke_and_workshop_every_100_at_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("LABKIT_CHECKPOINT_EVERY", raising=False)
    for scale, every in (("smoke", 0), ("workshop", 0), ("gpu", 100)):
        run, model, opt = _fresh(tmp_path, monkeypatch, scale, scale=scale)
        assert run.checkpoint_every == every
        assert run.checkpoint(98, model=model) is None
        saved = run.checkpoint(99, model=model)
        assert (saved is not None) == (scale == "gpu")
        assert run.resume(model=model) == (100 if scale == "gpu" else 0)
    monkeypatch.setenv("LABKIT_CHECKPOINT_EVERY", "2")
    run, model, _ = _fresh(tmp_path, monkeypatch, "env", scale="workshop")
    assert run.checkpoint_every == 2 and run.checkpoint(1, model=model).name == "step-1.pt"
    monkeypatch.setenv("LABKIT_CHECKPOINT_EVERY", "often")
    with pytest.raises(ParameterError, match="LABKIT_CHECKPOINT_EVERY must be an integer"):
        _fresh(tmp_path, monkeypatch, "bad", scale="workshop")


def test_keeps_the_last_two_atomically_and_tags_separate_loops(tmp_path, monkeypatch):
    run, model, opt = _fresh(tmp_path, monkeypatch, "keep")
    for step in range(5):
        run.checkpoint(step, every=1, model=model, optimizer=opt)
        run.checkpoint(step, every=2, tag="critic", model=model)
    files = sorted(p.name for p in (run.dir / "checkpoints").iterdir())
    assert files == ["critic", "step-3.pt", "step-4.pt"]         # no temporary file left behind
    assert sorted(p.name for p in (run.dir / "checkpoints" / "critic").iterdir()) == \
        ["step-1.pt", "step-3.pt"]
    assert run.resume(model=model) == 5 and run.resume(tag="critic", model=model) == 4
    assert run.resume(tag="actor", model=model) == 0             # a loop that never saved


def test_resume_without_checkpoint_changes_nothing_and_bad_calls_say_why(tmp_path, monkeypatch):
    run, model, opt = _fresh(tmp_path, monkeypatch, "fresh")
    before = [p.detach().clone() for p in model.parameters()]
    assert run.resume(model=model, optimizer=opt) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.rand(1).item() == pytest.approx(_after_setup_draw(tmp_path, monkeypatch))
    run.checkpoint(0, every=1, model=model)
    with pytest.raises(ValueError, match="has no optimizer"):
        run.resume(model=model, optimizer=opt)
    with pytest.raises(ValueError, match="give the state"):
        run.checkpoint(0, every=1)
    with pytest.raises(TypeError, match="cannot save x=int"):
        run.checkpoint(0, every=1, x=3)
    with pytest.raises(ValueError, match="tag"):
        run.checkpoint(0, every=1, tag="../up", model=model)


def _after_setup_draw(tmp_path, monkeypatch):
    _fresh(tmp_path, monkeypatch, "reference")
    return torch.rand(1).item()


def test_labkit_run_resume_reads_the_run_it_continues(tmp_path, monkeypatch, capsys):
    from labkit.lab.notebooks import discover

    nb = discover()[1]   # any series notebook: nothing is executed here
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(
        {"notebook": str(nb.path), "scale": "smoke", "seed": 4, "params": {}, "status": "interrupted"}))
    spec = resume_spec(run_dir, nb.stem)
    assert (spec.run_dir, spec.scale, spec.seed, spec.notebook) == (str(run_dir), "smoke", 4, str(nb.path))
    other = discover()[2].stem
    for argv, message in (
            (["run", other, "--resume", str(run_dir)], f"is a run of {nb.stem}, not of {other}"),
            (["run", nb.stem, "--resume", str(run_dir), "--seed", "1"], "drop --seed"),
            (["run", nb.stem, "--resume", str(run_dir), "--scale", "gpu"], "ran at scale smoke"),
            (["run", nb.stem, "--resume", str(tmp_path)], "not a run directory")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_notebook_01_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_does(tmp_path, monkeypatch):
    """01's GRPO loop adopts run.checkpoint/run.resume: executed with a checkpoint after every
    step, then resumed from the step before its last (the newest checkpoint removed, as if the
    job died during the last step), it records byte-identical results."""
    from labkit.lab.runs import execute, resume_run

    monkeypatch.setenv("LABKIT_CHECKPOINT_EVERY", "1")
    first = execute("01", scale="smoke", seed=3, out_dir=tmp_path, threads=1)
    assert first.ok, first.error
    ckpts = first.run_dir / "checkpoints"
    steps = first.results["steps_done"]
    assert sorted(p.name for p in ckpts.iterdir()) == [f"step-{steps - 2}.pt", f"step-{steps - 1}.pt"]
    straight = (first.run_dir / "results.json").read_text()
    (ckpts / f"step-{steps - 1}.pt").unlink()

    again = resume_run(first.run_dir, threads=1)
    assert again.ok, again.error
    assert (again.run_dir / "results.json").read_text() == straight
    rows = [json.loads(line) for line in (again.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(steps)) + [steps - 1]   # only the last step ran again
    untimed = [{k: v for k, v in r.items() if not k.startswith("time")} for r in (rows[steps - 1], rows[-1])]
    assert untimed[0] == untimed[1]                                          # and logged the same numbers


def test_run_metrics_before_gives_the_newest_row_per_step(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "m"))
    run = session.setup(scale="smoke", seed=0, device="cpu")
    assert run.metrics(before=0) == [] and run.metrics(before=5) == []
    for step, x in ((0, 1.0), (1, 2.0), (2, 3.0), (1, 20.0)):
        run.log(step, x=x)
    assert [(r["step"], r["x"]) for r in run.metrics(before=2)] == [(0, 1.0), (1, 20.0)]
    assert len(run.metrics()) == 4
    with pytest.raises(ValueError, match="before"):
        run.metrics(before=-1)
