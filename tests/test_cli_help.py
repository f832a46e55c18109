"""What `videoprism` tells before any work: every flag's help and default, the version, and
answers (help, version, usage errors, `info`) that load no Keras and no backend."""

import argparse
import re

from videoprism_keras import cli
from videoprism_keras.cli import COMMAND_MODULES
from videoprism_keras.cli.parser import build


def _actions(parser, where="videoprism"):
    """(where, parser, action) for every action of the parser and its sub-commands."""
    for action in parser._actions:
        yield where, parser, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{where} {name}")


def _name(action):
    return action.option_strings[-1] if action.option_strings else action.dest


def test_every_flag_has_help_that_states_its_default():
    seen = list(_actions(build(cli.__doc__, COMMAND_MODULES)))
    assert len({where for where, _, _ in seen}) == 1 + len(_commands()), "walk missed commands"
    for where, parser, action in seen:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{where} {_name(action)} has no help text"
        default = action.default
        # A switch (no argument) is off unless given: nothing to state.
        if default in (None, argparse.SUPPRESS) or action.nargs == 0 or default == []:
            continue
        # What --help prints for this action, as argparse expands it.
        shown = parser._get_formatter()._expand_help(action)
        assert str(default) in shown, f"{where} {_name(action)}: help {shown!r} hides {default!r}"


def test_no_help_says_default_none():
    for where, parser, action in _actions(build(cli.__doc__, COMMAND_MODULES)):
        if action.help and action.help is not argparse.SUPPRESS:
            shown = parser._get_formatter()._expand_help(action)
            assert "default: None" not in shown and "default: False" not in shown, where


def test_the_top_level_help_shows_every_command_with_an_example():
    for command in _commands():
        example = re.search(rf"^ +videoprism {command}\b", cli.__doc__, re.MULTILINE)
        assert example, f"no example of `videoprism {command}`"


def _commands():
    parser = build("", COMMAND_MODULES)
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(subparsers.choices)
