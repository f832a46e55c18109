"""Clip times in seconds, one convention for every file, table and answer.

A clip's `start_s`/`end_s` are seconds from the video's first frame; a whole video has
none. Arrays (`Embeddings`, a `SearchHit`, a `Clip`) say "none" with NaN, because a
float column cannot hold None; JSON, SQL columns and the keys that identify a clip say
it with None (null), because NaN is not JSON and never equals itself. These two
functions are the only place one becomes the other.
"""

from __future__ import annotations

import math

# Clip times are compared (and identify a clip) to the microsecond: times that differ
# below it (float rounding on their way through files and processes) are one time.
TIME_DIGITS = 6


def seconds_or_none(t: float | None) -> float | None:
    """A time as JSON and SQL keep it: a float, or None for no time (None or NaN).

    Args:
        t: float, numpy scalar or None. Seconds; None or NaN for a whole video.
    """
    if t is None:
        return None
    t = float(t)
    return None if math.isnan(t) else t


def seconds_or_nan(t: float | None) -> float:
    """A time as arrays keep it: a float, NaN for no time (None or NaN).

    Args:
        t: float, numpy scalar or None. Seconds; None or NaN for a whole video.
    """
    return math.nan if t is None else float(t)


def time_key(t: float | None) -> float | None:
    """A time as it identifies a clip: rounded to `TIME_DIGITS`, None for no time.

    Args:
        t: float, numpy scalar or None. Seconds; None or NaN for a whole video.
    """
    t = seconds_or_none(t)
    return None if t is None else round(t, TIME_DIGITS)
