"""Local stand-ins for the hubs: a tiny preset served from a Hugging Face cache on disk."""

import shutil
from pathlib import Path

from videoprism_keras import presets

TINY_PRESET = "videoprism_tiny_test"
TINY_REPO, TINY_FILE = "google/videoprism-tiny-test", "flax_tiny_repeated.npz"


def hf_cache_path(hf_cache: Path, repo: str, filename: str) -> Path:
    """Where huggingface_hub keeps a download of `repo`/`filename` (folders made)."""
    folder = Path(hf_cache) / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    target = folder / "snapshots" / revision / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def put_in_hf_cache(hf_cache: Path, repo: str, filename: str, source: Path) -> Path:
    """Lays `source` out exactly as huggingface_hub caches `repo`/`filename`."""
    target = hf_cache_path(hf_cache, repo, filename)
    shutil.copyfile(source, target)
    return target


def register_tiny_preset(monkeypatch=None):
    """Adds a built-in preset whose official checkpoint is the golden `lvt_small`."""
    entries = [
        (presets.PRESET_FILES, (TINY_REPO, TINY_FILE)),
        (presets.PRESET_CONFIGS, {"attention_logit_soft_cap": 5.0}),
    ]
    for table, value in entries:
        if monkeypatch is None:
            table[TINY_PRESET] = value
        else:
            monkeypatch.setitem(table, TINY_PRESET, value)
