"""The API's routes, one `APIRouter` per group; `create_app` mounts them under /api,
every one but `info.public` behind the token check.

    info.py      /api/health, /api/info, /api/metrics
    search.py    /api/search, /api/search/upload, /api/clips/{id}/similar
    clips.py     /api/clips/{id}, …/poster.jpg, …/video (HTTP Range), …/labels (POST)
    moments.py   /api/moments (GET by text, POST by upload), /api/clips/{id}/moments
    copies.py    /api/copies, /api/clips/{id}/copies
"""
