"""`python -m videoprism_keras.cli`: the `videoprism` command."""

import sys

from . import main

sys.exit(main())
