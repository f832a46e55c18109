"""MkDocs hook: the CLI page's flag tables, generated from the `videoprism` parser.

`docs/cli.md` holds the marker `<!-- cli-flags -->`; at build time it becomes a table of
which command takes which flag, and one table per command (flag, help, default), read
from the parser that `videoprism` itself builds. The page therefore cannot drift from
the command line. Building the parser imports no Keras (the CLI loads the library
only inside its commands), so the docs build stays light.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MARKER = "<!-- cli-flags -->"
SRC = Path(__file__).resolve().parents[2] / "src"


def _parser() -> argparse.ArgumentParser:
    if str(SRC) not in sys.path:  # this checkout's sources, not an installed copy
        sys.path.insert(0, str(SRC))
    from videoprism_keras import cli
    from videoprism_keras.cli.parser import build

    return build(cli.__doc__, cli.COMMAND_MODULES)


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each command's name → (its one-line help, its parser)."""
    for action in parser._actions:  # argparse offers no public view of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), p) for name, p in action.choices.items()}
    return {}


def _flags(command: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in command._actions if a.option_strings and a.dest != "help"]


def _name(action: argparse.Action) -> str:
    longest = max(action.option_strings, key=len)
    return longest


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(action: argparse.Action) -> str:
    if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{action.default}`"


def _usage_of(action: argparse.Action) -> str:
    names = ", ".join(f"`{n}`" for n in action.option_strings)
    if action.choices:
        names += " {" + ", ".join(str(c) for c in action.choices) + "}"
    elif action.nargs != 0 and action.metavar:
        names += f" {action.metavar}"
    return names


def flag_tables(parser: argparse.ArgumentParser | None = None) -> str:
    """The markdown that replaces the marker: the flag matrix, then each command's flags."""
    parser = parser or _parser()
    commands = _commands(parser)
    order: list[str] = []
    for _, command in commands.values():
        for action in _flags(command):
            if _name(action) not in order:
                order.append(_name(action))
    # Flags most commands share first, then the rest in the order they first appear.
    takes = {flag: [c for c, (_, p) in commands.items() if flag in map(_name, _flags(p))]
             for flag in order}  # fmt: skip
    order.sort(key=lambda flag: -len(takes[flag]))
    top = _flags(parser)
    lines = ["`videoprism` itself takes " + ", ".join(_usage_of(a) for a in top) + "; each"]
    lines += ["command takes the flags ticked in its column:", ""]
    lines.append("| flag | " + " | ".join(f"`{c}`" for c in commands) + " |")
    lines.append("|---|" + "---|" * len(commands))
    for flag in order:
        marks = " | ".join("✓" if c in takes[flag] else "" for c in commands)
        lines.append(f"| `{flag}` | {marks} |")
    for name, (summary, command) in commands.items():
        lines += ["", f"### `videoprism {name}`", ""]
        if summary:
            lines += [_cell(summary)[:1].upper() + _cell(summary)[1:] + ".", ""]
        positionals = [a for a in command._actions if not a.option_strings]
        if positionals:
            lines.append("Arguments: " + ", ".join(
                f"`{a.metavar or a.dest}`" + (f" ({_cell(a.help)})" if a.help else "")
                for a in positionals) + ".")  # fmt: skip
            lines.append("")
        lines += ["| flag | what | default |", "|---|---|---|"]
        for action in _flags(command):
            text = _cell(action.help or "")
            lines.append(f"| {_usage_of(action)} | {text} | {_default(action)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, flag_tables())
