"""`python -m videoprism_keras.cli`: the `videoprism` command."""

import sys

from . import main

if __name__ == "__main__":  # not when merely imported (the structure test imports every module)
    sys.exit(main())
