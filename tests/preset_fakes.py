"""Local stand-ins for the hubs: a tiny preset served from a Hugging Face cache on disk,
and any file or folder laid out as ModelScope caches a download."""

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


def put_in_modelscope_cache(cache: Path, repo: str, source: Path, legacy: bool = False) -> Path:
    """Lays `source` (a file, or a folder's files) out as modelscope caches a download of
    `repo` under `MODELSCOPE_CACHE`: `models/owner--name/snapshots/master/` since modelscope
    1.38 (`master`: the revision it fetches unless told), or with `legacy`, the
    `models/owner/name/` (dots spelled `___`) of earlier releases, which it still reads.
    Returns the repo's folder."""
    owner, name = repo.split("/")
    if legacy:
        folder = Path(cache) / "models" / owner / name.replace(".", "___")
    else:
        folder = Path(cache) / "models" / f"{owner}--{name}" / "snapshots" / "master"
    if Path(source).is_dir():
        shutil.copytree(source, folder, dirs_exist_ok=True)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / Path(source).name)
    return folder


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
