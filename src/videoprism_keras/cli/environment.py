"""What this installation has, for `videoprism info`: the extras of the package and which of
their packages are installed, the Keras backends, the accelerators, the cache.

All of it from package metadata, the file system and the environment: nothing here imports
Keras, a backend or any optional package, so `info` answers at once and works where one of
them is broken (which is when people run it).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path

from ..backend import default_chosen
from ..constants import BACKENDS
from ..extras import DISTRIBUTION

# "name[extra,...] (version); marker": the name and extras of a Requires-Dist line.
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def version_of(distribution: str) -> str | None:
    """The installed version of a distribution (a pip name), or None; imports nothing."""
    try:
        return importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def declared_extras() -> dict[str, list[str]] | None:
    """Each extra → the distributions it installs, its nested extras expanded: from the
    installed package's metadata, else (run from a source tree) from its pyproject.toml;
    None if neither can be read."""
    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
        extras = metadata.get_all("Provides-Extra") or []
        lines = metadata.get_all("Requires-Dist") or []
        direct: dict[str, list[str]] = {extra: [] for extra in extras}
        for line in lines:
            requirement, _, marker = line.partition(";")
            extra = _EXTRA_MARKER.search(marker)
            if extra and extra.group(1) in direct:
                direct[extra.group(1)].append(requirement)
    except importlib.metadata.PackageNotFoundError:
        direct = _extras_of_source_tree()
        if direct is None:
            return None
    return {extra: _expanded(extra, direct, set()) for extra in direct}


def _extras_of_source_tree() -> dict[str, list[str]] | None:
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    try:
        import tomllib  # Python 3.11+

        with open(pyproject, "rb") as f:
            table = tomllib.load(f)["project"]["optional-dependencies"]
    except (ImportError, OSError, KeyError, ValueError):
        return None
    return {extra: list(requirements) for extra, requirements in table.items()}


def _expanded(extra: str, direct: dict[str, list[str]], seen: set[str]) -> list[str]:
    """The distributions of `extra`: its own, and those of the extras of ours it names."""
    seen.add(extra)
    names = []
    for requirement in direct.get(extra, []):
        match = _REQUIREMENT.match(requirement)
        if not match:
            continue
        name, nested = match.group(1), match.group(2)
        if _normal(name) == _normal(DISTRIBUTION):
            for inner in (nested or "").split(","):
                if inner.strip() and inner.strip() not in seen:
                    names += _expanded(inner.strip(), direct, seen)
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_status() -> dict[str, dict] | None:
    """Each extra → {"installed": all its distributions are, "missing": those that are not}."""
    extras = declared_extras()
    if extras is None:
        return None
    status = {}
    for extra, names in extras.items():
        absent = [name for name in names if version_of(name) is None]
        status[extra] = {"installed": not absent, "missing": absent}
    return status


def backend_choice(flag: str | None) -> tuple[str, str]:
    """The backend Keras will run on, and why: the loaded Keras' own, --backend,
    KERAS_BACKEND, Keras' config file, or its default. Called after `main` has set the
    environment (`--backend`, or JAX where installed)."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend(), "Keras is loaded with it"
    if flag:
        return flag, "--backend"
    if os.environ.get("KERAS_BACKEND"):
        if default_chosen():
            return os.environ["KERAS_BACKEND"], "the default where JAX is installed"
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text())["backend"], str(config)
    except (OSError, ValueError, KeyError, TypeError):
        return "tensorflow", "Keras' default"


def backends() -> dict[str, str | None]:
    """Each Keras backend → its installed version, or None."""
    return {name: version_of(name) for name in BACKENDS}


def accelerators() -> list[str]:
    """The accelerators the system shows, without loading a driver or a backend: NVIDIA
    GPUs (the driver's /proc entries), AMD ROCm and TPU device files."""
    found = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            lines = info.read_text().splitlines()
            fields = dict(line.split(":", 1) for line in lines if ":" in line)
        except OSError:
            continue
        found.append(f"GPU {fields.get('Model', 'NVIDIA').strip()} ({info.parent.name})")
    if not found and list(Path("/dev").glob("nvidia[0-9]*")):
        found += [f"GPU NVIDIA ({p.name})" for p in sorted(Path("/dev").glob("nvidia[0-9]*"))]
    if Path("/dev/kfd").exists():
        found.append("GPU AMD (ROCm: /dev/kfd)")
    found += [f"TPU ({p.name})" for p in sorted(Path("/dev").glob("accel[0-9]*"))]
    return found


def backend_devices(backend: str) -> list[str]:
    """The devices as `backend` sees them: imports it (seconds), for `info --devices`."""
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]
    if backend == "torch":
        import torch

        count = torch.cuda.device_count()
        return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count)] or ["cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
    return []


def cache_contents(root: Path) -> list[dict]:
    """Each entry of the cache folder: its name and size in bytes."""
    if not root.is_dir():
        return []
    entries = []
    for entry in sorted(root.iterdir()):
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files if not p.is_symlink())
        entries.append({"name": entry.name, "bytes": size, "folder": entry.is_dir()})
    return entries
