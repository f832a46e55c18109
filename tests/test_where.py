"""The `where` filter grammar (apps/where.py), shared by the server and the CLI: what it
takes, what it refuses and what its messages say. The HTTP side (a refused filter is a
400, never a 500) is in test_serve.py."""

import ast
import inspect

import pytest

from videoprism_keras.apps import where
from videoprism_keras.apps.index import store as index_store
from videoprism_keras.apps.where import check_where
from videoprism_keras.constants import MAX_WHERE_CHARS, WHERE_COLUMNS

COLUMNS = ", ".join(WHERE_COLUMNS)


@pytest.mark.parametrize(
    "text",
    [
        "duration_s > 9",
        "path LIKE '%pristine%'",
        "path ilike '%CATS%' and not (start_s < 1.5 or end_s >= 1e3)",
        "start_s BETWEEN 0 AND .5",
        "size_bytes IN (1, 2, 3) OR duration_s IS NULL",
        "duration_s is not null and end_s - start_s <= 2 * 1.0",
        "starts_with(path, '/videos/') = true",
        "lower(path) = upper('a.mp4') AND size_bytes % 2 <> 0 AND start_s != -1",
        "path = 'it''s'",
        "path = 'a -- b /* c */ ; d \"e\"'",  # inside a string, nothing is syntax
        "((start_s > 1))",
    ],
)
def test_filters_over_the_columns_are_taken_as_given(text):
    assert check_where(text) == text


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n"])
def test_no_filter_is_none(text):
    assert check_where(text) is None


@pytest.mark.parametrize("name", ["id", "file_id", "vector", "poster", "mtime_ns", "sleep",
                                  "SELECT", "PATH", "_rowid", "clips"])  # fmt: skip
def test_names_other_than_the_columns_and_the_grammar_words_are_refused(name):
    with pytest.raises(ValueError) as refused:
        check_where(f"{name} = 1")
    assert str(refused.value) == f"unknown name {name!r}; the columns are {COLUMNS}"


def refused_at(text, at):
    """The message for a character that starts no token, at `at` (1-based)."""
    shown = text[at - 1 : at + 9]
    return f"unexpected {shown!r} at character {at}; a filter is a SQL predicate over {COLUMNS}"


@pytest.mark.parametrize(
    "text, at",
    [
        ("1=1; DROP TABLE clips", 4),
        ("path = 'x' -- comment", 12),
        ("path = 'x' /* */", 12),
        ("path = 'x'/**/OR/**/1=1", 11),
        ("start_s > 1 \\ 2", 13),
        ("path = $1", 8),
        ("path = ?", 8),
    ],
)
def test_statements_and_comments_are_refused_where_they_start(text, at):
    with pytest.raises(ValueError) as refused:
        check_where(text)
    assert str(refused.value) == refused_at(text, at)


@pytest.mark.parametrize(
    "text",
    [
        "start_s > 1 UNION SELECT * FROM clips",
        "sleep(10) = 0",
        "path = 'x' or id like '%'",
        "pg_sleep(1) is null",
    ],
)
def test_injection_through_other_names_is_refused(text):
    with pytest.raises(ValueError, match="unknown name"):
        check_where(text)


@pytest.mark.parametrize(
    "text, at",
    [
        ("\"path\" = 'x'", 1),  # a quoted name
        ("`path` = 'x'", 1),
        ("path = 'it''s", 12),  # 'it' is a whole string; 's is not
        ("path = 'x''", 11),
        ('path = "x"', 8),
    ],
)
def test_quotes_other_than_whole_string_literals_are_refused(text, at):
    with pytest.raises(ValueError) as refused:
        check_where(text)
    assert str(refused.value) == refused_at(text, at)


@pytest.mark.parametrize("text", ["(start_s > 1", "start_s > 1)", ")start_s > 1(", "(()"])
def test_unbalanced_parentheses_are_refused(text):
    with pytest.raises(ValueError) as refused:
        check_where(text)
    assert str(refused.value) == "unbalanced parentheses"


def test_a_filter_longer_than_the_limit_is_refused_by_its_length():
    fits = "start_s > 1" + " " * (MAX_WHERE_CHARS - len("start_s > 1"))
    assert check_where(fits) == fits
    for text in (fits + " ", "x" * 600, "1=1; DROP TABLE clips" * 100):
        with pytest.raises(ValueError) as refused:
            check_where(text)
        assert str(refused.value) == f"at most {MAX_WHERE_CHARS} characters"


def test_messages_leave_the_parameter_name_to_the_caller():
    for text in ("id = 1", "(start_s > 1", "path;", "x" * 600):
        with pytest.raises(ValueError) as refused:
            check_where(text)
        assert not str(refused.value).startswith(("where", "--where"))


def test_the_columns_are_columns_of_the_index_table():
    assert set(WHERE_COLUMNS) <= set(index_store.schema(4, {}).names)
    assert not {"id", "file_id", "vector", "poster"} & set(WHERE_COLUMNS)


def test_the_grammar_imports_only_the_standard_library_and_the_constants():
    tree = ast.parse(inspect.getsource(where))
    imported = {
        (node.level, node.module or "")
        if isinstance(node, ast.ImportFrom)
        else (0, node.names[0].name)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    assert imported == {(0, "re"), (2, "constants")}
