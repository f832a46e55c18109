"""One module of ours imported in a process of its own (`test_structure`): forked from a
server that has imported Keras and its backend already, so that each import costs only our
own modules' (a fresh interpreter spent ~3 s per module on Keras). Nothing of ours is
imported here or in the server."""

import importlib
import traceback


def import_alone(name: str) -> tuple[str, str | None]:
    """(name, None) if `import name` works here, else (name, the end of its traceback)."""
    try:
        importlib.import_module(name)
    except BaseException:  # what a fresh `python -c "import name"` would die of
        return name, traceback.format_exc()[-600:]
    return name, None
