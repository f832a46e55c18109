"""Finding and fetching preset files: built-in names, `hf://`, `kaggle://`, `modelscope://`,
local paths.

This module only locates files and downloads them into caches (the hubs' own, and
ours: `VIDEOPRISM_CACHE`, default `~/.cache/videoprism_keras`); `saving` reads and
writes models. Every download goes through a temporary file or folder renamed into
place under a file lock, so an interrupted run leaves nothing that looks complete,
and two processes fetch or build a file only once.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from .constants import CONFIG_FILE, WEIGHTS_FILE
from .extras import require
from .presets import PRESET_FILES, PRESETS, TOKENIZER_URL


class PresetUnavailableError(FileNotFoundError):
    """A preset's files are neither cached nor downloadable right now.

    `str(err)` says what to do in Python; `cli_message` says it in the command line's
    words (its flags), for the CLI to print instead.
    """

    def __init__(self, message: str, cli_message: str | None = None):
        super().__init__(message)
        self.cli_message = cli_message or message


def cache_root() -> Path:
    """Our cache: `VIDEOPRISM_CACHE`, else `$XDG_CACHE_HOME/videoprism_keras`, else
    `~/.cache/videoprism_keras`."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videoprism_keras"
    return Path(os.environ.get("VIDEOPRISM_CACHE", default)).expanduser()


# ------------------------------------------------------------------ caching
@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
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
    """Whether `path` holds a preset's config and weights (ours or keras_hub's)."""
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def cached(dest: Path, build: Callable[[Path], object]) -> Path:
    """`dest`, built by `build(tmp_dir)` once, atomically, even across processes.

    Args:
        dest: path. The preset directory to make.
        build: callable. Writes the preset into the temporary directory it is given,
            which is then renamed to `dest`.
    """
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
    """One file of a Hugging Face repo through huggingface_hub (cache, offline mode, progress).

    Args:
        repo: str. "owner/name".
        filename: str. The file's path inside the repo.
        purpose: str. What needs the file, for the error message.

    Raises:
        PresetUnavailableError: when the file is neither cached nor downloadable.
    """
    require(["huggingface_hub"], f"downloading {purpose}")
    from huggingface_hub import hf_hub_download

    def unavailable(reason: str) -> PresetUnavailableError:
        needs = (
            f"{purpose} needs {filename!r} from https://huggingface.co/{repo}, which is not "
            f"cached and cannot be downloaded ({reason}). Download it where there is network "
            "access and pass its path"
        )
        return PresetUnavailableError(
            f"{needs}, e.g. from_preset('/path/to/{filename}')",
            f"{needs}: --preset /path/to/{filename}",
        )

    with contextlib.suppress(Exception):  # cached: no network needed at all
        return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=True))
    # huggingface_hub retries a dead connection for half a minute: find out first.
    if _offline():
        raise unavailable("HF_HUB_OFFLINE is set")
    endpoint = _hf_endpoint()
    if not reachable(endpoint):
        raise unavailable(f"{endpoint} cannot be reached")
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:  # the file is missing, the connection broke: say what is needed
        raise unavailable(f"{type(err).__name__}: {err}") from err


def _hf_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except (ImportError, AttributeError):
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def reachable(url: str, timeout: float = 1.5) -> bool:
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds, name
    lookup included (run in a thread: a lookup on a machine without a resolver can hang
    longer than any socket timeout)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            answer.append(True)
        except (OSError, UnicodeError):
            answer.append(False)

    thread = threading.Thread(target=probe, name="reachable", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _offline() -> bool:
    """Hugging Face's offline switch, which we honour for every download."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_url(
    url: str,
    dest: Path,
    purpose: str,
    check: Callable[[str], None] | None = None,
    cli_flag: str | None = None,
) -> Path:
    """Downloads `url` to `dest` through a temporary file, so `dest` is whole or absent.

    Args:
        url: str. What to download (`file:` URLs too).
        dest: path. Where the file goes; returned at once when it exists.
        purpose: str. What needs the file, for the error message.
        check: callable or None. `check(path)` may raise `ValueError` on the
            downloaded file (e.g. an HTML error page instead of a model); the file
            is then discarded, never cached. Defaults to `None`.
        cli_flag: str or None. The command-line flag that takes the file instead,
            for the CLI's message. Defaults to `None`.

    Raises:
        PresetUnavailableError: when the file cannot be downloaded.
    """
    if dest.is_file():
        return dest

    def unavailable(reason: object) -> PresetUnavailableError:
        needs = (
            f"{purpose} needs {url}, which cannot be downloaded ({reason}). Download it where "
            f"there is network access and save it as {dest}, or pass its path"
        )
        cli = f"{needs}: {cli_flag} /path/to/{Path(url).name}" if cli_flag else None
        return PresetUnavailableError(f"{needs}.", cli)

    if _offline() and not url.startswith("file:"):
        raise unavailable("HF_HUB_OFFLINE is set")
    if not reachable(url):
        raise unavailable(f"{url} cannot be reached")
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
                raise unavailable(err) from err
            if check is not None:
                check(tmp)
            os.replace(tmp, dest)
        finally:  # also on Ctrl-C: no partial file survives
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return dest


# ------------------------------------------------------------------ resolve
def unknown_preset(preset: str) -> ValueError:
    """The error for a preset name that is none of ours, with the closest names."""
    close = difflib.get_close_matches(preset, list(PRESETS), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return ValueError(
        f"unknown preset {preset!r}.{hint} Built-in presets: {', '.join(PRESETS)}; or pass "
        "'hf://owner/repo', 'kaggle://owner/model/keras/variant', 'modelscope://owner/name', "
        "a preset directory or an official .npz file."
    )


def resolve(preset: str | os.PathLike, config_only: bool = False) -> Path:
    """Any preset spec → a local preset directory (ours or keras_hub's) or official `.npz`.

    A built-in name gives Google's official `.npz` (`saving` converts it once into a
    cached preset directory of ours).

    Args:
        preset: str or path. A built-in name, `hf://...`, `kaggle://...`,
            `modelscope://...`, or a local directory or `.npz`.
        config_only: bool. Fetch a remote preset directory without its weights (an
            official `.npz` has no separate config: its shapes are the
            architecture). Defaults to `False`.
    """
    text = os.fspath(preset)
    if text.startswith("hf://"):
        return _resolve_hf(text.removeprefix("hf://"), config_only)
    if text.startswith("modelscope://"):
        return _resolve_modelscope(text.removeprefix("modelscope://"), config_only)
    if text.startswith("kaggle://"):
        require(["kagglehub"], "kaggle:// presets")
        import kagglehub

        handle = text.removeprefix("kaggle://")
        if config_only:
            return Path(kagglehub.model_download(handle, path=CONFIG_FILE)).parent
        return Path(kagglehub.model_download(handle))
    path = Path(text).expanduser()
    if path.is_dir() or path.is_file():
        return path
    if text in PRESET_FILES:
        return official_checkpoint(text)
    if os.sep in text or text.endswith(".npz"):
        raise FileNotFoundError(f"preset path {text!r} does not exist")
    raise unknown_preset(text)


def official_checkpoint(name: str) -> Path:
    """Google's `.npz` of built-in preset `name`, from Hugging Face (or its cache)."""
    repo, filename = PRESET_FILES[name]
    return hf_download(repo, filename, f"preset {name!r}")


def _resolve_hf(spec: str, config_only: bool = False) -> Path:
    parts = spec.strip("/").split("/")
    if len(parts) < 2:
        raise ValueError(f"hf:// presets look like 'hf://owner/repo[/file.npz]'; got {spec!r}")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if filename:  # an explicit official checkpoint file
        return hf_download(repo, filename, f"hf://{spec}")
    require(["huggingface_hub"], "hf:// presets")
    from huggingface_hub import list_repo_files, snapshot_download

    try:
        if _offline() or not reachable(_hf_endpoint()):  # no retries on a dead network
            raise ConnectionError("offline")
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


def _resolve_modelscope(spec: str, config_only: bool = False) -> Path:
    """A ModelScope repo's preset directory or official `.npz`, through modelscope's
    downloads and cache (`MODELSCOPE_CACHE`, default `~/.cache/modelscope`)."""
    parts = spec.strip("/").split("/")
    if len(parts) < 2:
        raise ValueError(
            f"modelscope:// presets look like 'modelscope://owner/name[/file.npz]'; got {spec!r}"
        )
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    file_download, snapshot_download = _modelscope()

    def unavailable(reason: str) -> PresetUnavailableError:
        wanted = repr(filename) if filename else "its preset directory or official .npz"
        path = f"/path/to/{filename or parts[1]}"
        needs = (
            f"modelscope://{spec} needs {wanted} from {_modelscope_endpoint()}/models/{repo}, "
            "which is not in "
            f"ModelScope's cache and cannot be downloaded ({reason}). Download it where there "
            "is network access and pass its path"
        )
        return PresetUnavailableError(
            f"{needs}, e.g. from_preset({path!r})", f"{needs}: --preset {path}"
        )

    # Cached: no network at all. ModelScope's only offline switch is this argument.
    with contextlib.suppress(Exception):
        if filename:
            return Path(file_download(repo, filename, local_files_only=True))
        found = _preset_in(Path(snapshot_download(repo, local_files_only=True)), config_only)
        if found is not None:
            return found
    if _offline():
        raise unavailable("HF_HUB_OFFLINE is set")
    endpoint = _modelscope_endpoint()
    if not reachable(endpoint):  # modelscope retries a dead connection: find out first
        raise unavailable(f"{endpoint} cannot be reached")
    try:
        if filename:  # an explicit official checkpoint file
            return Path(file_download(repo, filename))
        # The config alone says whether the repo is a preset (then its weights, unless only
        # the architecture is wanted); else it should hold one official .npz.
        folder = Path(snapshot_download(repo, allow_file_pattern=CONFIG_FILE))
        if (folder / CONFIG_FILE).is_file():
            return folder if config_only else Path(snapshot_download(repo))
        folder = Path(snapshot_download(repo, allow_file_pattern="*.npz"))
    except Exception as err:  # the repo is missing, the connection broke: say what is needed
        raise unavailable(f"{type(err).__name__}: {err}") from err
    found = _preset_in(folder, config_only)
    if found is None:
        count = len(list(folder.rglob("*.npz")))
        raise ValueError(
            f"modelscope://{repo} holds no preset ({CONFIG_FILE}) and {count} .npz files"
        )
    return found


def _preset_in(folder: Path, config_only: bool) -> Path | None:
    """A downloaded repo's preset: the folder when it holds a preset's config (and its
    weights, unless only the architecture is wanted), else its one `.npz`; None if neither."""
    if (folder / CONFIG_FILE).is_file():
        return folder if config_only or (folder / WEIGHTS_FILE).is_file() else None
    npz = list(folder.rglob("*.npz"))
    return npz[0] if len(npz) == 1 else None


def _modelscope() -> tuple[Callable[..., str], Callable[..., str]]:
    """ModelScope's `(model_file_download, snapshot_download)`.

    `modelscope` (1.38 on) hands its downloads to `modelscope_hub`, whose functions are
    taken here directly: importing `modelscope.hub` imports torch where it is installed,
    seconds of start-up for nothing. Older `modelscope` has only its own.
    """
    try:
        from modelscope_hub.compat import model_file_download, snapshot_download
    except ImportError:
        try:
            from modelscope.hub.file_download import model_file_download
            from modelscope.hub.snapshot_download import snapshot_download
        except ImportError:
            require(["modelscope"], "modelscope:// presets")
            raise  # installed, yet neither API is there: say what failed
    return model_file_download, snapshot_download


def _modelscope_endpoint() -> str:
    try:
        from modelscope_hub.config import get_default_config

        return get_default_config().endpoint
    except (ImportError, AttributeError):
        return os.environ.get("MODELSCOPE_ENDPOINT") or "https://modelscope.cn"


def cached_tokenizer() -> Path:
    """Where `fetch_tokenizer` keeps the LvT vocabulary (it may not be there yet)."""
    return cache_root() / "tokenizers" / "c4_en.spm"


def fetch_tokenizer() -> Path:
    """The LvT vocabulary (T5's English SentencePiece model), downloaded once into the cache."""
    dest = cached_tokenizer()
    purpose = "the VideoPrism LvT tokenizer"
    return fetch_url(TOKENIZER_URL, dest, purpose, _check_sentencepiece, cli_flag="--tokenizer")


def _check_sentencepiece(path: str) -> None:
    try:
        import sentencepiece
    except ImportError:  # checked when a tokenizer is built from it
        return
    try:
        sentencepiece.SentencePieceProcessor(model_file=str(path))
    except Exception as err:  # sentencepiece raises RuntimeError/OSError on bad protos
        raise ValueError(f"the downloaded tokenizer is not a SentencePiece model: {err}") from None
