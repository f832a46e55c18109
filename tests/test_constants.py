"""What the CLI offers and what the library takes must agree: both read constants.py."""

import argparse

from videoprism_keras import constants
from videoprism_keras.cli import COMMAND_MODULES
from videoprism_keras.cli.parser import build

# Every flag with fixed choices, and the option set of the library it must equal.
CHOICES = {
    "--backend": constants.BACKENDS,
    "--dtype": constants.MODEL_DTYPES,
    "--engine": constants.ENGINES,
    "--format": constants.EXPORT_FORMATS,
    "--quantize": constants.QUANTIZATION_MODES,
    "--kind": constants.EMBED_KINDS,
    "--freeze": constants.FROZEN_TOWERS,
}
# Where one command's flag offers another set: (command, flag).
COMMAND_CHOICES = {("eval", "--format"): constants.EVAL_FORMATS,
                   ("train", "--dtype"): constants.KERAS_DTYPES,
                   ("finetune", "--dtype"): constants.KERAS_DTYPES}  # fmt: skip


def _flags_with_choices(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for flag, choices in _flags_with_choices(sub):
                    yield f"{name} {flag}", choices
        elif action.choices is not None:
            yield action.option_strings[-1], action.choices


def test_every_cli_choice_is_a_library_option_set():
    seen = dict(_flags_with_choices(build("", COMMAND_MODULES)))
    assert seen, "no flag with choices found: the parser walk is broken"
    for where, choices in seen.items():
        flag = where.split()[-1]
        expected = COMMAND_CHOICES.get((where.split()[0], flag), CHOICES.get(flag))
        assert expected is not None, f"{where} has choices not tied to constants.py"
        assert tuple(choices) == tuple(expected), where


def test_the_library_checks_the_same_sets():
    from videoprism_keras import export, finetune
    from videoprism_keras.model import quantization

    assert export.EXPORT_FORMATS is constants.EXPORT_FORMATS
    assert quantization.QUANTIZATION_MODES is constants.QUANTIZATION_MODES
    assert finetune.FROZEN_TOWERS is constants.FROZEN_TOWERS
