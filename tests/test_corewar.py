"""The Redcode parser and the MARS (labkit.core.corewar): opcode semantics on crafted cores,
classic behaviours (imp survives, dwarf kills a sitting duck), caps, parse errors, determinism,
and a cross-check against pMARS where a headless pmars is installed."""
import os
import shutil
import subprocess

import pytest

from labkit.core.corewar import (HELDOUT, TINY_HILL, TRAIN, Settings, battle, battle_many,
                                 family_source, FAMILIES, parse, run_round)
from labkit.core.corewar.redcode import MODIFIERS, OPCODES

DUCK = parse("jmp 0")
SHORT = Settings(core=800, cycles=6, processes=800, length=20, min_distance=20)


def core_after(src, cycles=6, position=400):
    core = []
    res = run_round(parse(src), DUCK, Settings(800, cycles, 800, 20, 20), position=position, core_out=core)
    return core, res


def fields(cell):
    return cell[2], cell[4]


def test_default_modifiers_and_modes():
    w = parse("mov #1, 2\nmov 1, #2\nmov 1, 2\nadd 1, 2\nslt 1, 2\njmp 1\ndat 5\nnop")
    mods = [MODIFIERS[i.mod] for i in w.instructions]
    assert mods == ["AB", "B", "I", "F", "B", "B", "F", "F"]
    dat = w.instructions[6]
    assert (dat.amode, dat.a, dat.b) == (0, 0, 5)      # DAT 5 -> DAT.F #0, $5
    assert OPCODES[parse("cmp 1, 2").instructions[0].op] == "SEQ"


def test_labels_equ_org_and_expressions():
    w = parse("step EQU 4\nstart add #step*2, bomb\n mov bomb, @bomb\n jmp start\nbomb dat #0, #0\n END start+1")
    assert w.instructions[0].a == 8 and w.instructions[0].b == 3
    assert w.instructions[2].a == -2 and w.start == 1
    assert parse(w.text()) == w


@pytest.mark.parametrize("src, says", [
    ("mox 0, 1", "line 1"), ("mov.q 0, 1", "modifier"), ("jmp nowhere", "unknown label"),
    ("mov 0, 1, 2", "at most 2"), ("", "no instructions"), ("mov 0, 1 +", "ends with an operator"),
    ("dat #1\nORG 5", "outside the warrior"), ("mov 0, 1\nx dat 0\nx dat 1", "defined twice"),
])
def test_parse_errors_are_one_line_value_errors(src, says):
    with pytest.raises(ValueError, match=says) as e:
        parse(src)
    assert "\n" not in str(e.value)


def test_mov_add_sub_mul_div_mod_write_the_right_fields():
    core, _ = core_after("mov.ab #7, 1\njmp 0\n", cycles=2)
    assert core[1][4] == 7
    core, _ = core_after("add.f 2, 3\njmp 0\ndat #1, #2\ndat #10, #20")
    assert fields(core[3]) == (11, 22)
    core, _ = core_after("sub.x 2, 3\njmp 0\ndat #1, #2\ndat #10, #20")
    assert fields(core[3]) == (8, 19)                   # A-=B', B-=A'
    core, _ = core_after("mul.ba 2, 3\njmp 0\ndat #3, #5\ndat #10, #20")
    assert fields(core[3]) == (50, 20)
    core, _ = core_after("div.b 2, 3\njmp 0\ndat #3, #5\ndat #10, #21")
    assert fields(core[3]) == (10, 4)
    core, _ = core_after("mod.ab #3, 2\njmp 0\ndat #0, #10")
    assert core[2][4] == 1
    core, _ = core_after("mov.i 2, 3\njmp 0\nspl #1, <2\ndat #0, #0")
    assert core[3] == core[2]


def test_division_by_zero_kills_the_process():
    _, res = core_after("div #0, 1\njmp 0")
    assert res.winner == 1 and res.cycles == 1


def test_indirect_and_increment_modes():
    core, _ = core_after("mov.ab #5, >1\ndat #0, #2\njmp 0", cycles=1)
    assert core[3][4] == 5 and core[1][4] == 3          # written at 1+2, then B of 1 incremented
    core, _ = core_after("mov.ab #5, <1\ndat #0, #3", cycles=1)
    assert core[1][4] == 2 and core[3][4] == 5          # B of 1 decremented first, then 1+2 written
    core, _ = core_after("mov.ab #5, *1\ndat #2, #0", cycles=1)
    assert core[3][4] == 5
    core, _ = core_after("mov.ab #5, {1\ndat #3, #0", cycles=1)
    assert core[1][2] == 2 and core[3][4] == 5
    core, _ = core_after("mov.ab #5, }1\ndat #2, #0", cycles=1)
    assert core[3][4] == 5 and core[1][2] == 3


# each program marks cell 9 (B-field = 1) only when its test does NOT skip / jump
@pytest.mark.parametrize("test, marks", [
    ("seq 7, 8", False), ("sne 7, 8", True), ("seq.i 7, 6", True), ("slt.ab #0, 7", False),
    ("slt.ab #9, 7", True), ("jmz.b 2, 7", True), ("jmz.b 2, 5", False), ("jmn.b 2, 7", False),
])
def test_skips_and_jumps(test, marks):
    # cells: 0 test, 1 mark, 2 jmp 0 (rest), ... 5 dat #0,#0, 6 dat #1,#2, 7 dat #1,#1, 8 dat #1,#1
    src = f"{test}\nmov.ab #1, 8\njmp 0\njmp 0\njmp 0\ndat #0, #0\ndat #1, #2\ndat #1, #1\ndat #1, #1\ndat #0, #0"
    core, res = core_after(src, cycles=4)
    assert res.winner == -1
    assert (core[9][4] == 1) == marks


def test_djn_decrements_and_jumps_until_zero():
    core, res = core_after("djn 0, #3\njmp 0", cycles=6)
    assert res.winner == -1 and core[0][4] == 0         # 3 -> 2 -> 1 -> 0 then falls through


def test_imp_survives_and_covers_the_core():
    res = run_round(TRAIN["imp"], DUCK, TINY_HILL, position=400)
    assert res.winner == -1 and res.cycles == TINY_HILL.cycles and res.score == (0.5, 0.5)
    assert res.coverage[0] == TINY_HILL.core


def test_dwarf_kills_a_sitting_duck_on_its_grid_and_dat_dies_at_once():
    res = run_round(TRAIN["dwarf"], DUCK, TINY_HILL, position=403)   # 403 = 3 mod 4: on the grid
    assert res.winner == 0 and res.score[0] > 0.9
    res = run_round(TRAIN["dwarf"], DUCK, TINY_HILL, position=401)   # off the grid: a tie
    assert res.winner == -1
    res = run_round(DUCK, parse("dat #0, #0"), TINY_HILL, position=100)
    assert res.winner == 0 and res.cycles == 1


def test_process_cap_and_cycle_cap():
    s = Settings(core=800, cycles=500, processes=16, length=20, min_distance=20)
    res = run_round(parse("spl 0\njmp -1"), DUCK, s, position=300)
    assert res.spawned[0] == 15 and res.winner == -1 and res.cycles == 500


def test_length_cap_and_bad_settings():
    with pytest.raises(ValueError, match="allows 20"):
        run_round(parse("\n".join(["nop"] * 21)), DUCK)
    with pytest.raises(ValueError, match="positive int"):
        Settings(core=0)


def test_battles_are_deterministic_and_pool_independent():
    a, b = TRAIN["paper"], HELDOUT["stone"]
    assert battle(a, b, 3, seed=5) == battle(a, b, 3, seed=5)
    jobs = [(TRAIN[x], HELDOUT[y], 2, i) for i, (x, y) in enumerate(zip(TRAIN, HELDOUT))]
    assert battle_many(jobs, workers=1) == battle_many(jobs, workers=2)
    with pytest.raises(ValueError, match="rounds"):
        battle(a, b, 0)


def test_sets_are_disjoint_and_families_parse():
    import random
    assert not set(TRAIN) & set(HELDOUT)
    train_src = {w.instructions for w in TRAIN.values()}
    assert not any(w.instructions in train_src for w in HELDOUT.values())
    rng = random.Random(0)
    for f in FAMILIES:
        for _ in range(20):
            assert len(parse(family_source(f, rng))) <= TINY_HILL.length


def _pmars():
    exe = os.environ.get("LABKIT_PMARS") or shutil.which("pmars")
    if not exe:
        return None, "pmars not installed (Debian: apt-get install pmars; needs a build without X11)"
    try:
        out = subprocess.run([exe, "-b", "-k", "-r", "1", "-s", "800", "-c", "8000", "-p", "800",
                              "-l", "20", "-d", "20", "-F", "400", "-"], input="mov.i 0, 1\n",
                             capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, f"{exe} does not run headless (an X11 build waits for a display)"
    if out.returncode != 0 or not out.stdout.strip():
        return None, f"{exe} gave no KotH output: {out.stderr.strip()[:80]}"
    return exe, ""


def test_cross_check_against_pmars(tmp_path):
    exe, why = _pmars()
    if exe is None:
        pytest.skip(why)
    names = list(TRAIN) + list(HELDOUT)
    W = {**TRAIN, **HELDOUT}
    agree = total = 0
    for i, x in enumerate(names):
        for y in names[i:]:
            for pos in (137, 402):
                (tmp_path / "a.red").write_text(W[x].text())
                (tmp_path / "b.red").write_text(W[y].text())
                out = subprocess.run([exe, "-b", "-k", "-r", "1", "-s", "800", "-c", "8000", "-p", "800",
                                      "-l", "20", "-d", "20", "-F", str(pos), str(tmp_path / "a.red"),
                                      str(tmp_path / "b.red")], capture_output=True, text=True, timeout=30)
                rows = [r.split() for r in out.stdout.strip().splitlines()[-2:]]
                w1, w2 = int(rows[0][0]), int(rows[1][0])
                ours = run_round(W[x], W[y], TINY_HILL, position=pos).winner
                theirs = 0 if w1 > w2 else 1 if w2 > w1 else -1
                agree += ours == theirs
                total += 1
    assert agree == total, f"{agree}/{total} outcomes agree with pMARS"
