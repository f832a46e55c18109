import gc
import logging
import os
from pathlib import Path

import pytest

# Read-only fixtures live beside the project: ../shared (override with VIDEOPRISM_SHARED).
SHARED = Path(
    os.environ.get("VIDEOPRISM_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
)
GOLDEN = SHARED / "golden"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        raise FileNotFoundError(
            f"golden fixtures not found at {GOLDEN}; set VIDEOPRISM_SHARED to the shared/ folder"
        )
    return GOLDEN


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not MEDIA.is_dir():
        raise FileNotFoundError(
            f"media fixtures not found at {MEDIA}; set VIDEOPRISM_SHARED to the shared/ folder"
        )
    return MEDIA


# Tests never reach the network: Hugging Face is offline, and each test gets its own
# empty caches (ours and Hugging Face's).
os.environ["HF_HUB_OFFLINE"] = "1"
# The CLI runs Keras unless a test names another engine (or takes this out to test "auto",
# whose float32 builds an OpenVINO artefact per model and clip shape): the suite's hundreds
# of float32 commands check the reference implementation, each in a cache of its own.
os.environ["VIDEOPRISM_ENGINE"] = "keras"


@pytest.fixture()
def caches(tmp_path, monkeypatch):
    ours, hf = tmp_path / "videoprism_cache", tmp_path / "hf_cache"
    monkeypatch.setenv("VIDEOPRISM_CACHE", str(ours))
    try:
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    except ImportError:
        pass
    return ours, hf


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state: Keras initialisers, numpy, Python."""
    try:
        import keras
    except ImportError:  # the video tests run without Keras
        return
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap():
    """What lives when a test file starts (Keras, the backends, what they imported lazily
    for earlier files) lives for the whole run: frozen out of the garbage collector's
    sight, so that the full collections Keras runs (one per variable a layer deletes, as
    `quantize` does; `clear_session`) scan only what the tests make. Garbage first."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def collection(media_dir):
    """The generated collection of videos with planted moments and copies (tests/collection.py),
    cached in tests/artifacts across runs and generated once however many processes ask."""
    from collection import cached

    return cached(Path(__file__).parent / "artifacts", media_dir)


@pytest.fixture(scope="session")
def collection_model(golden_dir):
    """The small checkpoint that indexes the collection (soft cap 5, as the golden run)."""
    from videoprism_keras import VideoPrismBackbone

    return VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                          attention_logit_soft_cap=5.0)  # fmt: skip


@pytest.fixture(scope="session")
def collection_index(collection, collection_model, tmp_path_factory):
    """The collection indexed once per run (collection.INDEX_SETTINGS): under pytest-xdist
    the workers share the run's temporary folder, and the first one builds it."""
    from collection import cached_index

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    return cached_index(root, collection, collection_model)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on loopback (tests/s3.py: moto's server, credentials checked, conditional
    puts refused as S3 refuses them) for the session; each test takes a bucket of its own."""
    import s3

    yield from s3.serve()


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance for the module, shared by its Ray tests (or the one this process
    already has); yields its address. Per module, not per session: the cluster tests start
    a `ray.cluster_utils.Cluster` of their own, which cannot share a process with it."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)  # fmt: skip
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


# The object-storage tests' commands (tests/test_object_store*.py): a cache of their own,
# the small LvT checkpoint with few small frames, and three short generated videos.
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "VIDEOPRISM_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    model = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames",
             "4", "--size", "16", "--no-progress"]  # fmt: skip
    return model, ["--tokenizer", media_dir / "test_spm.model"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from videos import write_video

    folder = tmp_path_factory.mktemp("videos")
    for i in range(3):
        write_video(folder / f"gen{i}.mp4", frames=30 + 10 * i, size=(32, 32))
    return folder


# LoRA adapters of the small checkpoint (eval and engine CLI tests).
@pytest.fixture(scope="module")
def lora_adapter(golden_dir, tmp_path_factory):
    """LoRA adapters of the small checkpoint, B not zero: they change what it embeds."""
    import keras

    from videoprism_keras import VideoPrismBackbone

    model = VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                           attention_logit_soft_cap=5.0)  # fmt: skip
    model.enable_lora(1)
    for variable in model.trainable_variables:
        variable.assign(keras.random.normal(variable.shape, stddev=0.05, seed=0))
    path = tmp_path_factory.mktemp("lora") / "tuned.lora.h5"
    model.save_lora_weights(path)
    return path
