import pytest

from labkit.core.tasks import format_arm, parse_arms


def test_parse_arms_ranges_singles_and_whole_categories():
    assert parse_arms("add:1-3,sub:2") == [("add", 1), ("add", 2), ("add", 3), ("sub", 2)]
    assert parse_arms("carry") == [("carry", d) for d in range(5)]
    assert parse_arms("add:1,add:1-2") == [("add", 1), ("add", 2)]  # no duplicates
    assert format_arm(("sort", 4)) == "sort:4"


@pytest.mark.parametrize("spec,match", [("foo:1", "unknown category 'foo'"), ("add:9", "out of range for add"),
                                        ("add:x", "bad difficulty range"), ("", "must be a string"),
                                        (3, "must be a string"), ("add:3-1", "out of range")])
def test_parse_arms_bad_input_one_line_errors(spec, match):
    with pytest.raises(ValueError, match=match) as error:
        parse_arms(spec)
    assert "\n" not in str(error.value)


def test_a_huge_range_is_refused_without_being_built():
    """From Python or JupyterLab too (not only `labkit run`): the ends are checked first, so a
    billion-wide range fails at once instead of filling the kernel's memory."""
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match="difficulty 1000000000 out of range for add"):
        parse_arms("add:1-1000000000")
    with pytest.raises(ValueError, match="difficulty 0 out of range for add"):
        parse_arms("add:0-1000000000")
    assert time.perf_counter() - started < 0.5
