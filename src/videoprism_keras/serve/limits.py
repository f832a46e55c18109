"""What a request may ask of the API: how many hits, how long a text, how many labels,
how large a body, how large and of which type an upload, how many pixels it decodes to,
and by which names the server is reached. `/api/info` reports them to clients."""

MAX_TOP_K = 100  # hits per search
DEFAULT_TOP_K = 12  # hits when a search does not say (the page's default too)
# Moments refined with the model per request: each is decoded and embedded again in the
# model's one thread, which every other query waits for; more are asked with refine=false.
MAX_REFINED_MOMENTS = 20
# Points of a curve sent back: the page draws about this many pixels across, and a long
# video's curve (thousands of windows, up to top_k of them) would otherwise dwarf the answer.
MAX_CURVE_POINTS = 1000
# How long a client is told to wait (Retry-After) when a copies run for other settings is
# under way: one whole-index run at a time.
COPIES_RETRY_AFTER_S = 30
MAX_QUERY_CHARS = 500
MAX_LABELS = 64
MAX_LABEL_CHARS = 100
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # the default; `create_app(max_upload_bytes=…)`
# Every other body (a list of labels): far more than any honest one needs.
MAX_BODY_BYTES = 64 * 1024
# An uploaded image's, or one frame of an uploaded video's, width × height, read from its
# header before anything is decoded: a few KB of PNG can declare gigabytes of pixels.
# An 8K frame (7680 × 4320) fits.
MAX_UPLOAD_PIXELS = 40_000_000
# The Host names a server answers to whatever else it is told (`--allowed-host` adds).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# The Content-Types an upload may declare, and the suffix its temporary file gets (the
# decoder goes by it).
UPLOAD_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
                "video/x-matroska": ".mkv", "video/ogg": ".ogv", "video/x-msvideo": ".avi",
                "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
                "image/webp": ".webp", "image/bmp": ".bmp"}  # fmt: skip
# A clip id as `identity.py` makes them: the file's id, then the clip's times or "whole".
CLIP_ID = r"^[0-9a-f]{32}@(whole|\d+\.\d{6}-\d+\.\d{6})$"
