"""normalize_command: one canonical text for a command however it was quoted or wrapped."""
from __future__ import annotations

import shlex

import pytest

from cmfrun.cmdline import normalize_command


@pytest.mark.parametrize(
    "given, expected",
    [
        ("python train.py", "python train.py"),
        ("  python   train.py\n  --lr 0.1 ", "python train.py --lr 0.1"),
        ("python 'train.py' \"--lr\" 0.1", "python train.py --lr 0.1"),
        ('python "my script.py"', "python 'my script.py'"),
        ("python 'my script.py'", "python 'my script.py'"),
        ("cmfrun -- python train.py", "python train.py"),
        ("cmfrun -s train --in data.csv -- python train.py", "python train.py"),
        ("/usr/bin/cmfrun -- python train.py", "python train.py"),
        ("python -m cmfrun --pipeline p -- python train.py", "python train.py"),
        ("cmfrun python train.py", "python train.py"),
        ("echo 'unbalanced", "echo ''\"'\"'unbalanced'"),
        ("", ""),
    ],
)
def test_string_forms(given: str, expected: str) -> None:
    assert normalize_command(given) == expected


def test_list_is_argv_and_equals_the_string_form() -> None:
    argv = ["python", "my script.py", "--name", "é ü"]
    assert normalize_command(argv) == shlex.join(argv)
    assert normalize_command(argv) == normalize_command(shlex.join(argv))
    assert normalize_command(("cmfrun", "--", "python", "a.py")) == "python a.py"


def test_folded_multiline_equals_one_line() -> None:
    folded = "python fe.py\n  --name a\n  --out \"feat a.csv\""
    assert normalize_command(folded) == normalize_command("python fe.py --name a --out 'feat a.csv'")


def test_word_splitting_is_shlex_on_random_text() -> None:
    """The regex word splitter gives exactly ``shlex.split(posix=True)``'s words (or raises
    where it raises) on random strings of quotes, escapes and whitespace."""
    import random

    from cmfrun.cmdline import _split

    rng = random.Random(12)
    alphabet = ["a", "b", " ", "\t", "\n", "\r", "'", '"', "\\", "$", "#", "é", "x y", "\x0b", "\u00a0"]
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        try:
            expected = shlex.split(text, comments=False, posix=True)
        except ValueError:
            with pytest.raises(ValueError):
                _split(text)
            continue
        assert _split(text) == expected, text
