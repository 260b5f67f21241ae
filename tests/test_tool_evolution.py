"""Notebook 25's mechanism (labkit.nb.n25_tool_evolution): the tool grammar and its parser, tools run in the
sandbox, the synthesizer, the merge, the budget split, Yunjue's parallel batch evolution with scripted tool streams
(reuse, carried calls, the shuffled control), the held-label score, and bad inputs."""
import random

import pytest
import torch

import labkit.nb.n25_tool_evolution as T

IDENTITY = tuple(range(256))


def ix(text):
    p = T.parse_tool(text)
    assert p is not None, text
    return p


def test_parse_tool_by_hand():
    assert len(T.INSTRUCTIONS) == 59
    assert T.parse_tool("add 3; mul 5") == (2, 16)
    assert T.parse_tool("xor 1") == (22,)
    assert T.parse_tool("  clr 7 ;set 0; shl 3 ") == (44, 45, 58)
    assert T.parse_tool("shr 1") == (53,)
    for bad in ("", "add 0", "add 16", "mul 4", "shr 4", "clr 8", "ADD 3", "add  3", "add 3;", "add -1", "add 3 4",
                "div 2", "add 3; add 3; add 3; add 3", "add 3\nmul 5", None, 3, ("add", 3)):
        assert T.parse_tool(bad) is None, bad
    assert T.parse_tool("add 3; add 3; add 3; add 3", max_len=4) == (2, 2, 2, 2)


def test_tool_text_and_parse_tool_round_trip_every_instruction():
    for i in range(len(T.INSTRUCTIONS)):
        assert T.parse_tool(T.tool_text((i,))) == (i,)
    p = (5, 30, 44)
    assert T.parse_tool(T.tool_text(p)) == p
    assert T.tool_text((2, 16)) == "add 3; mul 5"


def test_render_compiles_to_a_short_function_and_the_sandbox_runs_it():
    src = T.render(ix("add 3; mul 5"), "f")
    assert src == "def f(x):\n    a = x\n    a = (a + 3) & 255\n    a = (a * 5) & 255\n    return a"
    runner = T.ToolRunner()
    a, b, c = runner.outputs([ix("add 3; mul 5"), ix("clr 7"), ix("set 0; shl 1")])
    assert a[10] == 65 and a[255] == (258 * 5) & 255
    assert b[200] == 72 and b[5] == 5
    assert c[2] == 6 and c[255] == 254
    assert runner.calls == 1
    again = runner.outputs([ix("clr 7"), ix("add 3; mul 5")])     # cached: no new sandbox call
    assert runner.calls == 1 and again == [b, a]


def test_passes_is_the_binary_check():
    out = T.ToolRunner().outputs([ix("xor 1")])[0]
    assert T.passes(out, (0, 1, 2), (1, 0, 3))
    assert not T.passes(out, (0, 1, 2), (1, 0, 2))
    assert not T.passes(None, (0,), (0,))


def test_compose_matches_the_sandbox():
    runner = T.ToolRunner()
    table = torch.tensor(runner.outputs([(i,) for i in range(len(T.INSTRUCTIONS))]))
    rng = random.Random(0)
    progs = [tuple(rng.randrange(59) for _ in range(rng.randint(1, 3))) for _ in range(40)]
    outs = runner.outputs(progs)
    padded = torch.tensor([p + (0,) * (3 - len(p)) for p in progs])
    lengths = torch.tensor([len(p) for p in progs])
    xs = torch.randint(0, 256, (40, 5), generator=torch.Generator().manual_seed(0))
    got = T.compose(table, padded, lengths, xs)
    want = torch.tensor([[o[x] for x in row] for o, row in zip(outs, xs.tolist())])
    assert torch.equal(got, want)


def test_synthesizer_writes_tools_in_the_grammar_and_pretraining_lowers_the_loss():
    torch.manual_seed(0)
    table = torch.tensor(T.ToolRunner().outputs([(i,) for i in range(len(T.INSTRUCTIONS))]))
    model = T.Synthesizer(visible=3, hidden=64)
    losses = T.pretrain_synthesizer(model, table, 80, batch=64, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 80 and sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    xs, ys = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[2, 3, 4], [5, 6, 7]])
    tools = T.synthesize(model, xs, ys, 7, generator=torch.Generator().manual_seed(1))
    assert len(tools) == 2 and all(len(s) == 7 for s in tools)
    assert all(p is not None and 1 <= len(p) <= 3 and all(0 <= i < 59 for i in p) for s in tools for p in s)
    again = T.synthesize(model, xs, ys, 7, generator=torch.Generator().manual_seed(1))
    assert again == tools
    with pytest.raises(ValueError):
        T.Synthesizer(visible=0)
    with pytest.raises(ValueError):
        T.synthesize(model, xs, ys, 0)


def test_merge_by_hand():
    table = {("a",): IDENTITY, ("b", "b"): tuple((x + 1) & 255 for x in range(256)),
             ("c",): tuple((x + 1) & 255 for x in range(256)), ("d", "d", "d"): IDENTITY}
    outputs = lambda ps: [table[p] for p in ps]
    examples = [(0, 1), (5, 6)]
    assert T.merge(("a",), [], examples, outputs, "naive") == ("a",)
    assert T.merge(("a",), [], examples, outputs, "verified") == ("a",)
    assert T.merge(None, [("b", "b"), ("c",), ("a",)], examples, outputs, "naive") == ("c",)  # shortest, first on ties
    assert T.merge(("d", "d", "d"), [("b", "b"), ("a",)], examples, outputs, "naive") == ("a",)
    # verified: the most examples passed, then the shortest, then the earliest
    assert T.merge(("a",), [("b", "b")], examples, outputs, "verified") == ("b", "b")
    assert T.merge(("b", "b"), [("c",)], examples, outputs, "verified") == ("c",)
    assert T.merge(("a",), [("d", "d", "d")], [(3, 4)], outputs, "verified") == ("a",)
    with pytest.raises(ValueError):
        T.merge(None, [("a",)], examples, outputs, "llm")


def test_split_budget_by_hand():
    assert T.split_budget(10, [8, 8, 8]) == [4, 3, 3]
    assert T.split_budget(10, [1, 8, 8]) == [1, 5, 4]
    assert T.split_budget(30, [2, 3]) == [2, 3]
    assert T.split_budget(0, [4, 4]) == [0, 0]
    assert T.split_budget(5, []) == []
    with pytest.raises(ValueError):
        T.split_budget(-1, [3])


class Table:
    """A scripted runner: each program is a name mapped to its 256 outputs; counts what it was asked."""

    def __init__(self, table):
        self.table, self.asked = table, 0

    def outputs(self, programs):
        self.asked += 1
        return [self.table[tuple(p)] for p in programs]


def plus1_task(need=0, x=0):
    # needs x + 1: visible (x, x+1), held (100 -> 101, 200 -> 201)
    return T.ToolTask(need, (x,), (x + 1,), (100, 200), (101, 201))


PLUS1 = tuple((x + 1) & 255 for x in range(256))
FAKE = tuple((x + 1) & 255 if x < 50 else 0 for x in range(256))     # right on the visible bytes, wrong when held
TOOLS = {("r",): PLUS1, ("w",): IDENTITY, ("f",): FAKE, ("r", "r"): PLUS1}


def test_evolve_reuses_a_library_tool_and_carries_the_calls():
    tasks = [plus1_task(0, 1), plus1_task(0, 2)]
    streams = [[("r",), ("w",), ("w",), ("w",)], [("w",), ("w",), ("w",), ("w",)]]
    per = T.evolve(tasks, streams, Table(TOOLS), budget=2, batch_size=1, library="none")
    assert per.tools == [("r",), None] and per.source == ["synth", None]
    assert per.calls == [1, 3]                    # the second task gets its 2 calls and the 1 the first left
    lib = T.evolve(tasks, streams, Table(TOOLS), budget=2, batch_size=1, library="merged")
    assert lib.tools == [("r",), ("r",)] and lib.source == ["synth", "library"] and lib.calls == [1, 0]
    assert lib.library == {0: ("r",)} and lib.library_size == [1, 1]
    assert lib.egl == [1.0, 0.5] and per.egl == [1.0, 0.5]
    # a parallel batch: both tasks see the library as it was at the batch start (empty), so no reuse
    par = T.evolve(tasks, streams, Table(TOOLS), budget=2, batch_size=2, library="merged")
    assert par.source == ["synth", None] and par.calls == [1, 2]


def test_evolve_spends_at_most_the_budget_and_stops_at_the_first_accepted_tool():
    rng = random.Random(0)
    names = list(TOOLS)
    tasks = [plus1_task(rng.randrange(3), rng.randrange(40)) for _ in range(13)]
    streams = [[rng.choice(names) for _ in range(rng.randint(0, 9))] for _ in tasks]
    for lib in ("none", "merged"):
        evo = T.evolve(tasks, streams, Table(TOOLS), budget=3, batch_size=4, library=lib)
        assert sum(evo.calls) <= 3 * len(tasks)
        for t, s, c, tool, src in zip(tasks, streams, evo.calls, evo.tools, evo.source):
            assert c <= len(s)
            if src == "synth":
                assert tool == s[c - 1] and all(not T.passes(TOOLS[p], t.xs, t.ys) for p in s[:c - 1])
            if src == "library":
                assert c == 0
        assert len(evo.egl) == 4


def test_shuffled_control_serves_another_needs_entry():
    minus = tuple((x - 1) & 255 for x in range(256))
    tools = TOOLS | {("m",): minus}
    tasks = [plus1_task(0, 1), T.ToolTask(1, (5,), (4,), (9,), (8,)), plus1_task(0, 2), T.ToolTask(1, (7,), (6,), (9,), (8,))]
    streams = [[("r",)], [("m",)], [("w",)], [("w",)]]
    merged = T.evolve(tasks, streams, Table(tools), budget=1, batch_size=2, library="merged")
    assert merged.source == ["synth", "synth", "library", "library"]
    shuffled = T.evolve(tasks, streams, Table(tools), budget=1, batch_size=2, library="shuffled", permutation=[1, 0])
    assert shuffled.source == ["synth", "synth", None, None]
    assert shuffled.library == merged.library == {0: ("r",), 1: ("m",)}


def test_verified_merge_keeps_the_entry_that_passes_every_example():
    tasks = [plus1_task(0, 1), plus1_task(0, 60), plus1_task(0, 2)]
    # task 0 accepts the fake tool (right below 50); task 1 rejects it and synthesises the right one; task 2 reuses
    streams = [[("f",)], [("r", "r")], [("w",)]]
    naive = T.evolve(tasks, streams, Table(TOOLS), budget=1, batch_size=1, library="merged", merge_mode="naive")
    assert naive.source == ["synth", "synth", "library"] and naive.library == {0: ("r", "r")}
    s = T.score(naive, tasks, Table(TOOLS))
    assert s["solve"] == pytest.approx(2 / 3) and s["false_accept_rate"] == pytest.approx(1 / 3)
    assert s["reuse"] == pytest.approx(1 / 3) and s["accept"] == 1.0 and s["calls"] == 2
    assert T.held_right(naive, tasks, Table(TOOLS)) == [False, True, True]


def test_trusted_library_skips_the_check_and_keeps_a_wrong_tool():
    tasks = [plus1_task(0, 1), plus1_task(0, 60), plus1_task(0, 70)]
    streams = [[("f",)], [("r",)], [("r",)]]
    checked = T.evolve(tasks, streams, Table(TOOLS), budget=1, batch_size=1, library="merged")
    assert checked.tools == [("f",), ("r",), ("r",)] and checked.source == ["synth", "synth", "library"]
    trusted = T.evolve(tasks, streams, Table(TOOLS), budget=1, batch_size=1, library="merged", recheck=False)
    assert trusted.tools == [("f",), ("f",), ("f",)] and trusted.source == ["synth", "library", "library"]
    assert T.score(trusted, tasks, Table(TOOLS))["false_accept_rate"] == 1.0


def test_score_by_hand():
    tasks = [plus1_task(0, 1), plus1_task(0, 2), plus1_task(0, 3), plus1_task(0, 4)]
    evo = T.Evolution(tools=[("r",), ("f",), None, ("f",)], source=["synth", "synth", None, "library"],
                      calls=[1, 2, 3, 0], egl=[0.5])
    s = T.score(evo, tasks, Table(TOOLS))
    assert s == {"solve": 0.25, "accept": 0.75, "false_accept_rate": pytest.approx(2 / 3), "reuse": 0.25,
                 "calls": 6, "egl": 0.5}
    empty = T.score(T.Evolution(tools=[None], source=[None], calls=[1]), tasks[:1], Table(TOOLS))
    assert empty["false_accept_rate"] == 0.0 and empty["solve"] == 0.0


def test_make_stream():
    outs = [PLUS1, IDENTITY, FAKE]
    tasks = T.make_stream(outs, 4, 3, 10, random.Random(0))
    assert len(tasks) == 12 and sorted(t.need for t in tasks) == [0] * 4 + [1] * 4 + [2] * 4
    for t in tasks:
        assert len(t.xs) == 3 and len(t.held_xs) == 10 and not set(t.xs) & set(t.held_xs)
        assert t.ys == tuple(outs[t.need][x] for x in t.xs)
        assert t.held_ys == tuple(outs[t.need][x] for x in t.held_xs)
    assert T.make_stream(outs, 4, 3, 10, random.Random(0)) == tasks
    with pytest.raises(ValueError):
        T.make_stream(outs, 1, 200, 100, random.Random(0))
    with pytest.raises(ValueError):
        T.make_stream(outs, 0, 3, 10, random.Random(0))


def test_bad_inputs_raise_one_line_value_errors():
    tasks, streams = [plus1_task()], [[("r",)]]
    for kwargs in (dict(library="all"), dict(merge_mode="llm"), dict(budget=0), dict(batch_size=0),
                   dict(library="shuffled"), dict(library="merged", permutation=[0]), dict(recheck="yes")):
        args = dict(budget=1, batch_size=1) | kwargs
        with pytest.raises(ValueError) as e:
            T.evolve(tasks, streams, Table(TOOLS), **args)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        T.evolve(tasks, [], Table(TOOLS), budget=1)
    with pytest.raises(ValueError):
        T.ToolRunner(chunk=0)
