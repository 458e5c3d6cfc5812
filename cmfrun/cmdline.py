"""One canonical text for a command line, so the same command matches however it was written.

``cmf dvc ingest`` compares a ``dvc.lock`` stage's ``cmd`` with the ``Execution``
property the wrapper recorded (``shlex.join(argv)``). The two spellings differ
in quoting and whitespace, and the lock may hold ``cmfrun -- python train.py``
where the wrapper recorded ``python train.py``; :func:`normalize_command`
maps all of them to the same string.

Example::

    >>> normalize_command("cmfrun -s train --  python  'train.py' --lr 0.1")
    'python train.py --lr 0.1'
    >>> normalize_command(["python", "my script.py"])
    "python 'my script.py'"
"""
from __future__ import annotations

import os
import re
import shlex
from typing import List, Sequence, Union

#: Program names that are the cmfrun wrapper itself.
_WRAPPERS = ("cmfrun", "cmfrun.exe")
#: A word shlex.quote leaves alone (its own test); a command made only of such words
#: needs no shell parsing.
_PLAIN = re.compile(r"[\w@%+=:,./-]+", re.ASCII)


# ``shlex.split(cmd, posix=True)`` (no comments) with regular expressions instead of its
# per-character Python loop (ingest normalises thousands of commands): a word is a run of
# unquoted characters, '...' (literal), "..." (a backslash escapes only " and itself) and
# \x (x); words are separated by shlex's whitespace. tests/test_cmdline.py checks the
# result against shlex itself on random text.
_WORD = r"""(?:[^ \t\r\n\\'"]+|'[^']*'|"(?:[^"\\]|\\[\s\S])*"|\\[\s\S])+"""
_TOKEN = re.compile(r"[ \t\r\n]*(" + _WORD + ")")
_PIECE = re.compile(r"""([^\\'"]+)|'([^']*)'|"((?:[^"\\]|\\[\s\S])*)"|\\([\s\S])""")
_DQ_ESCAPE = re.compile(r'\\(["\\])')


def _split(cmd: str) -> List[str]:
    """The words of ``cmd`` as ``shlex.split`` gives them; ``ValueError`` where it raises
    (an unclosed quote, a trailing backslash)."""
    words: List[str] = []
    pos = 0
    match = _TOKEN.match
    while True:
        m = match(cmd, pos)
        if m is None:
            break
        words.append(_unquote(m.group(1)))
        pos = m.end()
    if cmd[pos:].strip(" \t\r\n"):
        raise ValueError("no closing quotation or escaped character")
    return words


def _unquote(word: str) -> str:
    if "'" not in word and '"' not in word and "\\" not in word:
        return word
    out: List[str] = []
    for m in _PIECE.finditer(word):
        plain, single, double, escaped = m.groups()
        if plain is not None:
            out.append(plain)
        elif single is not None:
            out.append(single)
        elif double is not None:
            out.append(_DQ_ESCAPE.sub(r"\1", double))
        else:
            out.append(escaped)
    return "".join(out)


def _tokens(cmd: str) -> List[str]:
    try:
        return _split(cmd)
    except ValueError:
        # Unbalanced quotes: the shell would refuse it too; compare on whitespace alone.
        return cmd.split()


def _strip_wrapper(tokens: List[str]) -> List[str]:
    """Drop a leading ``cmfrun [options] --`` (or ``python -m cmfrun [options] --``)."""
    start = 0
    if len(tokens) >= 3 and os.path.basename(tokens[0]).startswith("python") and tokens[1] == "-m" and tokens[2] == "cmfrun":
        start = 3
    elif tokens and os.path.basename(tokens[0]) in _WRAPPERS:
        start = 1
    else:
        return tokens
    rest = tokens[start:]
    if "--" in rest:
        return rest[rest.index("--") + 1 :]
    # No separator: the wrapper's own options come first, the command starts at the first non-option.
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        i += 1
    return rest[i:]


def normalize_command(cmd: Union[str, Sequence[str]]) -> str:
    """The canonical form of ``cmd``: shell-quoting and whitespace normalised, any leading
    ``cmfrun [options] --`` removed. A list is an argv (each item one argument) and gives
    the same result as the equivalent string.

    >>> normalize_command('python   "train.py"\\n  --epochs 3')
    'python train.py --epochs 3'
    """
    if isinstance(cmd, str):
        words = cmd.split()
        if all(_PLAIN.fullmatch(w) for w in words):
            tokens = words  # fast path: nothing to unquote (ingest normalises thousands)
        else:
            tokens = _tokens(cmd.strip())
    else:
        tokens = [str(c) for c in cmd]
    return shlex.join(_strip_wrapper(tokens))


__all__ = ["normalize_command"]
