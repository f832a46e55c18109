"""Presets: built-in names, `hf://`, `kaggle://`, local directories and official `.npz` files.

A built-in name downloads Google's official checkpoint from Hugging Face (its
cache, progress bar and `HF_HUB_OFFLINE` apply), converts it once, and keeps the
result as a preset directory of ours in the cache (`VIDEOPRISM_CACHE`, default
`~/.cache/videoprism_keras`). A conversion is built in a temporary folder beside
its destination and renamed into place under a file lock, so an interrupted run
leaves nothing that looks complete, and two processes convert only once.
"""

import contextlib
import datetime
import difflib
import gc
import json
import os
import shutil
import tempfile
import urllib.request
import warnings
from pathlib import Path

from .model.init import skip_initialization
from .presets import PRESET_CONFIGS, PRESET_FILES, PRESETS, TOKENIZER_URL

CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE = "config.json", "model.weights.h5", "metadata.json"
TOKENIZER_ASSET = Path("assets") / "tokenizer" / "vocabulary.spm"  # keras_hub's layout too


class PresetUnavailableError(FileNotFoundError):
    """A preset's files are neither cached nor downloadable right now."""


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videoprism_keras"
    return Path(os.environ.get("VIDEOPRISM_CACHE", default)).expanduser()


# ------------------------------------------------------------------ caching
@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: huggingface_hub's dependency does the same job there
            from filelock import FileLock

            with FileLock(str(path) + ".win"):
                yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_preset_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def cached(dest: Path, build) -> Path:
    """`dest`, built by `build(tmp_dir)` once, atomically, even across processes."""
    if is_preset_dir(dest):
        return dest
    with _file_lock(dest.parent / f".{dest.name}.lock"):
        if is_preset_dir(dest):  # another process finished it while we waited
            return dest
        for stale in dest.parent.glob(f".{dest.name}.partial-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            build(tmp)
            if dest.exists():  # incomplete leftovers of a manual copy
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


# ---------------------------------------------------------------- downloads
def hf_download(repo: str, filename: str, purpose: str) -> Path:
    """One file of a Hugging Face repo through huggingface_hub (cache, offline mode, progress)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise ImportError(
            f"{purpose} is downloaded with huggingface_hub: pip install 'videoprism-keras[hub]'"
        ) from err
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:  # offline, no network, missing file: say what is needed
        raise PresetUnavailableError(
            f"{purpose} needs {filename!r} from https://huggingface.co/{repo}, which is not "
            f"cached and could not be downloaded ({type(err).__name__}: {err}). Download it by "
            f"hand and pass its path, e.g. from_preset('/path/to/{filename}'), or run once "
            "with network access (unset HF_HUB_OFFLINE)."
        ) from err


def _offline() -> bool:
    """Hugging Face's offline switch, which we honour for every download."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_url(url: str, dest: Path, purpose: str, check=None) -> Path:
    """Downloads `url` to `dest` through a temporary file, so `dest` is whole or absent.

    `check(path)` may raise `ValueError` on the downloaded file (e.g. an HTML error
    page instead of a model); the file is then discarded, never cached.
    """
    if dest.is_file():
        return dest
    unavailable = (
        f"{purpose} needs {url}, which could not be downloaded ({{}}). Download it by hand "
        f"and save it as {dest}, or pass its path."
    )
    if _offline() and not url.startswith("file:"):
        raise PresetUnavailableError(unavailable.format("HF_HUB_OFFLINE is set"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.parent / f".{dest.name}.lock"):
        if dest.is_file():
            return dest
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.partial-", dir=dest.parent)
        try:
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as got:
                    shutil.copyfileobj(got, out)
            except OSError as err:  # URLError, timeouts, refused connections, disk full
                raise PresetUnavailableError(unavailable.format(err)) from err
            if check is not None:
                check(tmp)
            os.replace(tmp, dest)
        finally:  # also on Ctrl-C: no partial file survives
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return dest


# ------------------------------------------------------------------ resolve
def unknown_preset(preset: str) -> ValueError:
    close = difflib.get_close_matches(preset, list(PRESETS), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return ValueError(
        f"unknown preset {preset!r}.{hint} Built-in presets: {', '.join(PRESETS)}; or pass "
        "'hf://owner/repo', 'kaggle://owner/model/keras/variant', a preset directory or an "
        "official .npz file."
    )


def resolve(preset, config_only: bool = False) -> Path:
    """Any preset spec → a local preset directory (ours or keras_hub's) or official `.npz`.

    `config_only`: a remote preset directory is fetched without its weights (an
    official `.npz` has no separate config: its shapes are the architecture).
    """
    text = os.fspath(preset)
    if text.startswith("hf://"):
        return _resolve_hf(text.removeprefix("hf://"), config_only)
    if text.startswith("kaggle://"):
        try:
            import kagglehub
        except ImportError as err:
            raise ImportError("kaggle:// presets need kagglehub: pip install kagglehub") from err
        handle = text.removeprefix("kaggle://")
        if config_only:
            return Path(kagglehub.model_download(handle, path=CONFIG_FILE)).parent
        return Path(kagglehub.model_download(handle))
    path = Path(text).expanduser()
    if path.is_dir() or path.is_file():
        return path
    if text in PRESET_FILES:
        return cached(cache_root() / text, lambda tmp: _convert_official(text, tmp))
    if os.sep in text or text.endswith(".npz"):
        raise FileNotFoundError(f"preset path {text!r} does not exist")
    raise unknown_preset(text)


def _resolve_hf(spec: str, config_only: bool = False) -> Path:
    parts = spec.strip("/").split("/")
    if len(parts) < 2:
        raise ValueError(f"hf:// presets look like 'hf://owner/repo[/file.npz]'; got {spec!r}")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if filename:  # an explicit official checkpoint file
        return hf_download(repo, filename, f"hf://{spec}")
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError as err:
        raise ImportError(
            "hf:// presets need huggingface_hub: pip install huggingface_hub"
        ) from err
    try:
        files = list_repo_files(repo)
    except Exception:  # offline: whatever the local cache holds
        try:
            snapshot = Path(snapshot_download(repo, local_files_only=True))
        except Exception as err:
            raise PresetUnavailableError(
                f"hf://{repo} is not in the Hugging Face cache and cannot be listed "
                f"offline ({type(err).__name__}); run once with network access"
            ) from err
        files = [str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()]
        if CONFIG_FILE in files:
            return snapshot
        npz = [f for f in files if f.endswith(".npz")]
        return snapshot / npz[0] if len(npz) == 1 else snapshot
    if CONFIG_FILE in files and config_only:
        return hf_download(repo, CONFIG_FILE, f"hf://{spec}").parent
    if CONFIG_FILE in files:
        return Path(snapshot_download(repo))
    npz = [f for f in files if f.endswith(".npz")]
    if len(npz) != 1:
        raise ValueError(f"hf://{repo} holds no preset ({CONFIG_FILE}) and {len(npz)} .npz files")
    return hf_download(repo, npz[0], f"hf://{spec}")


def fetch_tokenizer() -> Path:
    """The LvT vocabulary (T5's English SentencePiece model), downloaded once into the cache."""
    dest = cache_root() / "tokenizers" / "c4_en.spm"
    return fetch_url(TOKENIZER_URL, dest, "the VideoPrism LvT tokenizer", _check_sentencepiece)


def _check_sentencepiece(path) -> None:
    try:
        import sentencepiece
    except ImportError:  # checked when a tokenizer is built from it
        return
    try:
        sentencepiece.SentencePieceProcessor(model_file=str(path))
    except Exception as err:  # sentencepiece raises RuntimeError/OSError on bad protos
        raise ValueError(f"the downloaded tokenizer is not a SentencePiece model: {err}") from None


def _convert_official(name: str, out: Path) -> None:
    from .checkpoint import load_flax_checkpoint

    repo, filename = PRESET_FILES[name]
    npz = hf_download(repo, filename, f"preset {name!r}")
    model = load_flax_checkpoint(npz, PRESET_CONFIGS[name]["attention_logit_soft_cap"])
    tokenizer = None
    if model.is_multimodal:
        try:
            tokenizer = fetch_tokenizer()
        except PresetUnavailableError as err:  # the weights are still worth caching
            warnings.warn(f"{name}: converted without its tokenizer: {err}", stacklevel=2)
    save_backbone(model, out, source=f"hf://{repo}/{filename}", tokenizer_file=tokenizer)
    del model
    gc.collect()  # free it before the caller loads the cached copy: peak stays ~1x the model


# ------------------------------------------------------------- load / save
def save_backbone(model, preset_dir, source=None, tokenizer_file=None) -> None:
    import keras

    from . import __version__

    out = Path(preset_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "module": "videoprism_keras",
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "registered_name": f"videoprism_keras>{type(model).__name__}",
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    model.save_weights(out / WEIGHTS_FILE)
    metadata = {
        "videoprism_keras_version": __version__,
        "keras_version": keras.__version__,
        "parameter_count": model.count_params(),
        "date_saved": datetime.datetime.now().isoformat(timespec="seconds"),
        "source": source or getattr(model, "preset_source", None),
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    tokenizer_file = tokenizer_file or getattr(model, "tokenizer_file", None)
    if tokenizer_file:
        (out / TOKENIZER_ASSET).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer_file, out / TOKENIZER_ASSET)


def _read_config(directory: Path) -> tuple[dict, bool]:
    """The backbone arguments in a preset directory, and whether keras_hub wrote it."""
    try:
        saved = json.loads((directory / CONFIG_FILE).read_text())
        config = dict(saved["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{directory / CONFIG_FILE} is not a VideoPrism preset config: {err}"
        ) from err
    from_keras_hub = "keras_hub" in str(saved.get("registered_name", "")) + str(
        saved.get("module", "")
    )
    if from_keras_hub and "VideoPrism" not in str(saved.get("class_name", "")):
        raise ValueError(f"{directory} holds a keras_hub {saved.get('class_name')}, not VideoPrism")
    for key in ("name", "trainable"):
        config.pop(key, None)
    dtype = config.pop("dtype", None)
    if isinstance(dtype, dict):  # a serialised DTypePolicy
        dtype = dtype.get("config", {}).get("name")
    if dtype:
        config["dtype"] = dtype
    return config, from_keras_hub


def load_backbone(cls, preset, load_weights=True, **overrides):
    name = os.fspath(preset)
    if not load_weights and name in PRESET_CONFIGS:  # architecture only: no download at all
        return cls(**{**PRESET_CONFIGS[name], **overrides})
    source = resolve(preset, config_only=not load_weights)
    if source.is_file():  # an official .npz checkpoint
        from .checkpoint import backbone_config, load_flax_checkpoint, read_checkpoint

        if not load_weights:
            return cls(**backbone_config(read_checkpoint(source), **overrides))
        return load_flax_checkpoint(source, **overrides)
    if not (source / CONFIG_FILE).is_file():
        raise ValueError(f"{source} is not a preset directory: it has no {CONFIG_FILE}")
    config, from_keras_hub = _read_config(source)
    if not load_weights:
        model = cls(**{**config, **overrides})
    else:
        # Weights load at the saved shapes; new frame counts or resolutions come after.
        reshaping = {k: overrides[k] for k in ("num_frames", "image_shape") if k in overrides}
        with skip_initialization():
            model = cls(**{**config, **{k: v for k, v in overrides.items() if k not in reshaping}})
        weights = source / WEIGHTS_FILE
        if not weights.is_file():
            raise PresetUnavailableError(f"{source} has no {WEIGHTS_FILE}")
        try:
            if from_keras_hub:
                from .keras_hub_weights import load_keras_hub_weights

                load_keras_hub_weights(model, weights)
            else:
                model.load_weights(weights)
        except (OSError, KeyError) as err:
            hint = ""
            if cache_root().resolve() in source.resolve().parents:
                hint = f"; delete {source} and the next call converts it again"
            raise ValueError(f"{weights} is unreadable or incomplete: {err}{hint}") from err
        if reshaping:
            model = _resized(cls, model, reshaping)
            gc.collect()  # the model at the saved shapes: Keras layers hold reference cycles
    model.preset_source = name
    tokenizer = source / TOKENIZER_ASSET
    model.tokenizer_file = str(tokenizer) if tokenizer.is_file() else None
    return model


def _resized(cls, model, reshaping):
    """A copy of `model` for other frame counts or resolutions; position tables resized."""
    import keras

    from .model.embeddings import grid_resize_matrix

    with skip_initialization():
        new = cls(**{**model.get_config(), **reshaping})
    for old_var, new_var in zip(model.weights, new.weights, strict=True):
        value = keras.ops.convert_to_numpy(old_var)
        if tuple(old_var.shape) != tuple(new_var.shape):
            old_table = _owner_of(model, old_var)
            new_table = _owner_of(new, new_var)
            value = grid_resize_matrix(old_table.grid, new_table.grid) @ value
        new_var.assign(value)
    return new


def _owner_of(model, variable):
    for table in (model.video_encoder.spatial_positions, model.video_encoder.temporal_positions):
        if table.table is variable:
            return table
    raise ValueError(f"weight {variable.path} changes shape; only position tables can")
