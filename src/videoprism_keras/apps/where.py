"""The `where` filter: what a filter over an index's clips may say, checked before the
index sees it.

A filter is handed to Lance as a SQL predicate, so whoever can send one could send any
SQL; this grammar takes only what a predicate over the index's columns needs (the
columns, literals, comparisons, `and`/`or`/`not`, `like`, `in`, `between`, `is null`
and a few string functions) and refuses the rest (statements, comments, quoted names,
other columns, other functions). Whether the filter then evaluates (`path > 5`) is
for the index to say. The server and the CLI share it: each puts its own name of the
parameter before the message (`where: …`, `--where …: …`).

Pure Python: importing it loads neither Keras nor FastAPI.
"""

import re

from ..constants import MAX_WHERE_CHARS, WHERE_COLUMNS

# Besides the columns, the only names a filter may use (compared case-insensitively).
WHERE_WORDS = frozenset({"and", "or", "not", "like", "ilike", "in", "between", "is", "null",
                         "true", "false", "starts_with", "lower", "upper"})  # fmt: skip
# One token: blanks, a string literal ('' inside it is a quote), a number, a name, or an
# operator. A character that starts no token (`;`, `"`, a backtick…) ends the check.
_TOKEN = re.compile(r"\s+|'(?:[^']|'')*'|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+"
                    r"|[A-Za-z_][A-Za-z0-9_]*|<=|>=|<>|!=|[=<>(),+*/%-]")  # fmt: skip


def check_where(where: str | None) -> str | None:
    """A `where` filter checked against the grammar.

    Args:
        where: str or None. A SQL predicate over the index's columns
            (`WHERE_COLUMNS`), e.g. `"duration_s > 60 and path like '%cats%'"`.

    Returns:
        The filter as given, or None when `where` is None, empty or blank (no filter).

    Raises:
        ValueError: for a filter longer than `MAX_WHERE_CHARS` characters, a character
            or name the grammar does not take (the message names it, its position and
            the columns), or unbalanced parentheses. The message does not name the
            parameter: the caller puts its own name before it.
    """
    if where is None or not where.strip():
        return None
    if len(where) > MAX_WHERE_CHARS:
        raise ValueError(f"at most {MAX_WHERE_CHARS} characters")
    position, depth = 0, 0
    while position < len(where):
        match = _TOKEN.match(where, position)
        if match is None or where.startswith(("--", "/*"), position):
            shown = where[position : position + 10]
            raise ValueError(f"unexpected {shown!r} at character {position + 1}; a filter is "
                             "a SQL predicate over " + ", ".join(WHERE_COLUMNS))  # fmt: skip
        token = match.group()
        if token[0].isalpha() or token[0] == "_":
            if token not in WHERE_COLUMNS and token.lower() not in WHERE_WORDS:
                raise ValueError(f"unknown name {token!r}; the columns are "
                                 + ", ".join(WHERE_COLUMNS))  # fmt: skip
        depth += token == "("
        depth -= token == ")"
        if depth < 0:
            raise ValueError("unbalanced parentheses")
        position = match.end()
    if depth:
        raise ValueError("unbalanced parentheses")
    return where
