import os

import pytest

from backends import threads


@pytest.mark.parametrize(
    "args,expected",
    [([], 1), (["--threads=3"], 3), (["-q", "--threads", "2"], 2), (["--threads=0"], None), (["--threads=x"], None)],
)
def test_thread_count_is_read_from_the_command_line(args, expected):
    assert threads.from_args(args) == expected


def test_configure_sets_every_variable_and_rejects_bad_counts(monkeypatch):
    for var in threads.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_count", None)
    threads.configure(3)
    assert {os.environ[v] for v in threads.ENV_VARS} == {"3"} and threads.count() == 3
    threads.configure(3)  # again, as pytest-benchmark's compare command does
    assert threads.settings()["requested"] == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive int"):
            threads.configure(bad)
