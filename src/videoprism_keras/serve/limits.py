"""What a request may ask of the API: how many hits, how long a text, how many labels,
how large and of which type an upload. `/api/info` reports them to clients."""

MAX_TOP_K = 100  # hits per search
DEFAULT_TOP_K = 12  # hits when a search does not say (the page's default too)
MAX_QUERY_CHARS = 500
MAX_LABELS = 64
MAX_LABEL_CHARS = 100
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # the default; `create_app(max_upload_bytes=…)`
# The Content-Types an upload may declare, and the suffix its temporary file gets (the
# decoder goes by it).
UPLOAD_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
                "video/x-matroska": ".mkv", "video/ogg": ".ogv", "video/x-msvideo": ".avi",
                "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
                "image/webp": ".webp", "image/bmp": ".bmp"}  # fmt: skip
# A clip id as `identity.py` makes them: the file's id, then the clip's times or "whole".
CLIP_ID = r"^[0-9a-f]{32}@(whole|\d+\.\d{6}-\d+\.\d{6})$"
