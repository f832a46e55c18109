"""Every default and file name that more than one module needs, each in one place.

Importing this module loads nothing else (no Keras), so any part of the package,
the tokenizer and the video tools included, may use it.
"""

from pathlib import Path

# The package's version, written only here: pyproject.toml reads it (setuptools' dynamic
# `attr`, parsed without importing the package), `videoprism_keras.__version__` is it.
VERSION = "0.1.0"

# The attention-logit soft cap of every official release. Official `.npz` checkpoints
# do not store it, so whoever loads one without saying otherwise gets this value.
DEFAULT_SOFT_CAP = 50.0

# Zero-shot classification as in the official colab: one prompt per label, and a
# softmax over cosine similarities divided by this temperature.
PROMPT_TEMPLATE = "a video of {}."
TEMPERATURE = 0.01

# The --dtype a user may ask a model for: float32 is the official numerics, the bfloat16
# ones (Keras dtype policies) and int8 (quantized: `CLI_DTYPE_PRECISION`) approximate fast
# modes.
MODEL_DTYPES = ("float32", "bfloat16", "mixed_bfloat16", "int8")

# A preset directory, in keras_hub's layout, so that either library reads the other's.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
TOKENIZER_ASSET = Path("assets") / "tokenizer" / "vocabulary.spm"
TOKENIZER_CONFIG_FILE = "tokenizer.json"

# `videoprism serve`: where it listens unless told otherwise (this machine only), and the
# environment variable that may carry its bearer token (safer than a flag, which `ps` shows).
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
SERVE_TOKEN_ENV = "VIDEOPRISM_TOKEN"

# LoRA (model/lora.py): the projections that get adapters by default (attention, MLP and
# pooler projections of every encoder; not the patch projection), and the adapter file's
# suffix, keras_hub's.
LORA_TARGETS = ("qkv_proj", "out_proj", "in_proj", "q_proj", "kv_proj")
LORA_FILE_SUFFIX = ".lora.h5"

# `where` filters (apps/where.py checks them for the server and the CLI): the columns of
# the index's table (apps/index/store.py's schema) that a filter may name, and the
# longest filter taken.
WHERE_COLUMNS = ("path", "start_s", "end_s", "duration_s", "size_bytes")
MAX_WHERE_CHARS = 500

# The video index (apps/index/): the size from which it builds a LanceDB vector index
# (exact search below it), chosen with benchmarks/index_search.py. Here so that the CLI's
# help shows it without importing the apps.
ANN_THRESHOLD = 200_000

# The titles of the `--plot` pictures (`plots`), unless `--title` gives another; {} is the
# search's query.
CLASSIFICATION_TITLE = "VideoPrism zero-shot classification"
SEARCH_TITLE = "VideoPrism search: “{}”"

# Option sets that the library checks and the CLI offers as choices; one home so that the
# two cannot drift apart (tests/test_constants.py ties every CLI flag to these).
BACKENDS = ("jax", "torch", "tensorflow")
# `export`: TF Serving's SavedModel, ONNX, and LiteRT's `.tflite`.
EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
# The file each format writes ends so (a SavedModel is a folder): the CLI checks `-o` by it
# before Keras loads.
EXPORT_SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}
# `quantize`: the modes Keras quantizes to without calibration data (GPTQ/AWQ need it).
QUANTIZATION_MODES = ("int8", "int4", "float8")
# `embed`: one vector per video (or clip), per frame, or the token features.
EMBED_KINDS = ("video", "frames", "features")
# Contrastive fine-tuning: the tower kept fixed, if any.
FROZEN_TOWERS = ("video", "text")
# A fine-tuning pair's `end` may pass its video's stated duration by this many seconds
# (captions are often timed in whole seconds, and a container's duration is rounded);
# further, the caption describes frames the video does not have, and the row is refused.
PAIR_END_SLACK_S = 1.0
# Contrastive fine-tuning's Adam step size unless told (small: the towers are pretrained).
FINETUNE_LEARNING_RATE = 1e-5
# What a fine-tuning run records of how it trains (`run`'s argument names; the CLI's
# flags are these with dashes), and a resume must repeat: the checkpoint fixes the
# model, not these, so another value would silently train otherwise.
FINETUNE_SETTINGS = ("lora_rank", "freeze", "learning_rate", "batch_size", "num_frames", "size",
                     "remat")  # fmt: skip

# Moments (apps/timeline.py, apps/refine.py): a moment's span is its peak's windows whose
# score is above baseline + MOMENT_RELATIVE × (peak − baseline) (half height), the baseline
# being the median score (most windows are not the moment). Refinement embeds windows of
# MOMENT_REFINE_WINDOW × the index's clip again around each edge, every index stride /
# MOMENT_REFINE_DIVISOR, reaching MOMENT_REFINE_MARGIN index strides beyond the edge's ramp,
# and snaps an edge to a shot cut within MOMENT_SNAP_STRIDES fine strides (looking for
# cuts from MOMENT_SNAP_LEAD_S before it: the detector needs frames before a cut). Half-clip
# windows: chosen on the generated collection (benchmarks/README.md, "Moments").
MOMENT_TOP_K = 5
MOMENT_RELATIVE = 0.5
MOMENT_REFINE_DIVISOR = 4
MOMENT_REFINE_WINDOW = 0.5
MOMENT_REFINE_MARGIN = 1.0
MOMENT_SNAP_STRIDES = 2.0
MOMENT_SNAP_LEAD_S = 1.0

# Copies (`VideoIndex.copies`, `videoprism copies`: apps/copies.py): a window's match is
# one of its COPY_NEIGHBOURS nearest windows in other videos whose similarity, after
# centring the vectors on the index's mean (docs/copies.md says why), is at least
# COPY_THRESHOLD; a copy is a run of matches at one time offset spanning at least
# COPY_MIN_SECONDS. Chosen on generated copies (figures: docs/copies.md); five neighbours,
# not ten: a window's farther neighbours are look-alikes more often than copies (the
# collection of tests/test_copies_accuracy.py: precision 0.92 with ten, 1.00 with five).
COPY_THRESHOLD = 0.9
COPY_MIN_SECONDS = 3.0
COPY_NEIGHBOURS = 5

# ------------------------------------------------ moments of files (`videoprism moments FILE…`)
# Without an index, each file is streamed in windows of this many seconds, each starting
# this share of a window after the last unless told (overlapping, so that a moment's edge
# falls inside some window's first half): a few seconds, as long as one action, with room
# for 16 frames.
MOMENT_CLIP_SECONDS = 4.0
MOMENT_STRIDE_SHARE = 0.5
# The `moments --plot` picture's title unless `--title` gives another; {} is the query.
MOMENT_TITLE = "VideoPrism moments: “{}”"

# Shots (video/shots.py; `index --shots`): PySceneDetect's ContentDetector finds a cut where
# the mean change of hue, saturation and lightness between two frames passes SHOT_THRESHOLD
# (its own default, tuned on real footage). Frames are shrunk to about SHOT_DETECT_WIDTH
# pixels wide first: cuts are whole-picture changes, so detail costs time and finds nothing.
# A shot shorter than SHOT_MIN_SECONDS (a flash, a fade's last frames) is no window of its own
# but part of a neighbour's; windows are at most SHOTS_CLIP_SECONDS unless --clip-seconds
# says otherwise (long shots are split into equal parts).
SHOT_THRESHOLD = 27.0
SHOT_DETECT_WIDTH = 160
SHOT_MIN_SECONDS = 0.5
SHOTS_CLIP_SECONDS = 10.0

# ------------------------------------------------ review of issue 27 (moments, copies)
# Centred cosines (timeline.centred_scores, the index's moment curves, copies): a vector
# (or query) nearer the mean it is centred on than this has no direction of its own. Stored
# vectors are float32 unit vectors (|v|² = 1 within ~1e-7), so |v − μ|² = 1 − 2 v·μ + |μ|²
# is off by ~1e-7 however it is summed, ~3e-4 on the norm: the floor stays above that.
CENTRED_FLOOR = 1e-3
# Refining moments (apps/refine.py): this many moments' edge windows are decoded and
# embedded at a time, so that memory does not grow with top_k.
MOMENT_REFINE_GROUP = 4

# ------------------------------------------------ many writers on one index (issue 28)
# A commit that Lance still refuses for another writer's commit after its own retries
# (apps/index/commits.py) is tried again, whole, against the latest version, up to
# COMMIT_RETRIES times in all, after pauses of COMMIT_RETRY_BASE_S doubling each time up to
# COMMIT_RETRY_MAX_S, each jittered by ±50 % (writers that collided do not collide again
# in step): about 25 s of pauses in all (Lance's own retries take up to 30 s), then one
# clear error.
COMMIT_RETRIES = 8
COMMIT_RETRY_BASE_S = 0.25
COMMIT_RETRY_MAX_S = 8.0

# ------------------------------------------------ issue 28: readers see new commits
# A long-lived reader (`serve`, `VideoIndex.load(refresh_seconds=)`) looks for a newer
# committed version of its index at most every this many seconds, so other processes'
# commits show within that bound. On an object store each look is a listing of the
# versions (a round trip, billed per request: ~5 ms on a loopback S3, tens on a real one),
# too much for every query; in a local folder it is a directory listing: every read.
INDEX_REFRESH_SECONDS = 2.0
INDEX_REFRESH_SECONDS_LOCAL = 0.0

# ------------------------------------------------ issue 28 P: the Ray pipeline's commits
# The Ray driver (apps/ray_commits.py) buffers the actors' clips and commits them at most
# every RAY_COMMIT_SECONDS, or at once when RAY_COMMIT_CLIPS are waiting: a commit costs
# nearly the same for 4 rows as for thousands (a version, a manifest, a merge on `id`, and
# on an object store several round trips), so per-batch commits cap a cluster at a few
# hundred clips/s. The size rule is for fast pipelines: thousands of clips a commit keep the
# commits (and versions) few where each costs most, on object stores; the driver holds
# ~4 KB a clip meanwhile. A kill loses at most what waits (the same command redoes it);
# the first batch is committed at once (a wrong target shows at once).
RAY_COMMIT_SECONDS = 2.0
RAY_COMMIT_CLIPS = 5000
# A commit runs in a thread of the driver while the next clips gather (one at a time): past
# this many times RAY_COMMIT_CLIPS waiting, the driver waits for it (its memory bounded).
RAY_COMMIT_BACKLOG = 2
# The null pipeline's vectors (apps/ray_null.py, the commit ceiling's benchmark): as wide as
# the base models' embeddings, so that its commits carry the rows a real run stores.
RAY_NULL_DIM = 768

# ------------------------------------------ issue 28: index maintenance (apps/index/maintenance.py)
# A table version replaced this long ago is deleted by maintenance (`index --keep-versions`).
# Readers move to the latest version every few seconds at most, but one read may stay on a
# version much longer: `copies` searches a whole index at one version, several minutes at
# a million clips. An hour covers that; the versions kept are the last hour's commits (a
# pipeline committing every 2 s: 1,800, a few KB each), and the files passes replaced in it
# (a copy of the table per pass, below a million clips: docs/index-search.md).
INDEX_KEEP_VERSIONS_SECONDS = 3600.0
# Machines' clocks (Lance stamps versions with the writer's) agree within this (NTP).
MAINTAIN_CLOCK_MARGIN_SECONDS = 5.0
# A writer looks every this many commits whether a pass is due (a manifest read, ~ms).
MAINTAIN_EVERY_COMMITS = 16
# A pass is due past this many small fragments (each commit of new rows adds one)…
MAINTAIN_SMALL_FRAGMENTS = 64
# …or versions since the last pass (deletes and updates add versions, not fragments)…
MAINTAIN_VERSIONS = 256
# …or, between commits, rows the vector index lacks (searched exhaustively; at the end of
# a run of writes, any).
MAINTAIN_UNINDEXED_ROWS = 10_000

# ------------------------------------------------ issue 28: search served by replicas
# `serve --workers N` (serve/replicas.py): every answer names the worker that gave it in this
# header; the parent looks at its workers (a stop, a death, a worker ready), and each worker
# at its parent (gone: it stops), this often. On a stop (Ctrl-C, SIGTERM), uvicorn lets the
# requests under way finish for SERVE_GRACEFUL_SECONDS (one server or a worker); a worker
# still running past that and a margin (its exit: closing the index, the model) is SIGKILLed.
SERVE_WORKER_HEADER = "X-VideoPrism-Worker"
SERVE_BACKLOG = 128  # connections a listening socket holds before they are accepted
SERVE_REPLICA_POLL_SECONDS = 0.2
SERVE_GRACEFUL_SECONDS = 5  # an int: uvicorn's `timeout_graceful_shutdown`
SERVE_STOP_SECONDS = SERVE_GRACEFUL_SECONDS + 5.0

# ------------------------------------------------ issue 28: `embed -o s3://…`
# An embeddings output on an object store (apps/embed_store.py) is reached through pyarrow's
# S3 file system; `--storage-option` takes LanceDB's names (as for an index), mapped here to
# that file system's. A store that does not answer fails in seconds, not after the AWS
# SDK's long default retries: a connection try this long, this many attempts per request.
EMBED_STORE_OPTIONS = {"aws_access_key_id": "access_key", "aws_secret_access_key": "secret_key",
                       "aws_session_token": "session_token", "aws_endpoint": "endpoint",
                       "aws_endpoint_url": "endpoint", "endpoint": "endpoint",
                       "region": "region", "aws_region": "region",
                       "allow_http": "allow_http"}  # fmt: skip
EMBED_STORE_CONNECT_S = 5.0
EMBED_STORE_ATTEMPTS = 3
# An object is uploaded under its name + this + a random id, then copied to its name (a copy
# replaces an object whole, an upload that fails does not): a name with it is neither a part
# nor an output, and a resumed run passes it by.
EMBED_STORE_TEMPORARY = ".tmp-"


# ------------------------------------------------ issue 28 review: index retention's floor
# `index --keep-versions` below this is refused: a reader mid-search (a `copies` pass, a slow
# query on an object store) stays on its version for seconds to minutes, and a version
# deleted under it fails the read. Python's `keep_versions_s` may go lower (tests).
INDEX_KEEP_VERSIONS_MIN_SECONDS = 60.0


# ------------------------------------------ issue 28: `serve --workers N`, restarts and start
# A worker that dies once the server is announced (serving, or loading again after a death)
# is started again after a delay that doubles with each of its deaths in the window, from
# the first below up to the cap: a fault that a fresh start does not cure (a model that no
# longer loads, a query of death) must not spin a CPU on restarts. One worker is started
# again at most SERVE_RESTARTS times within SERVE_RESTART_WINDOW_SECONDS; the death after
# that stops the server with one line: a crash loop is not passing, and serving on with
# fewer workers would hide it. The window spans several model loads (a worker that dies
# just after each start is caught); an occasional death (the OOM killer once an hour) is
# started again for ever.
SERVE_RESTART_DELAY_SECONDS = 0.5
SERVE_RESTART_MAX_DELAY_SECONDS = 30.0
SERVE_RESTARTS = 5
SERVE_RESTART_WINDOW_SECONDS = 600.0
# A worker not ready this long after its start (a hung load, a store that never answers)
# stops the server with one line. Generous: a first start may download a checkpoint.
SERVE_START_SECONDS = 900.0


# --------------------------------------------------- issue 29: `videoprism eval`, datasets
# The annotation formats `eval` reads (`--format`): a generic CSV/parquet, and each
# benchmark's own files (apps/evaluation/adapters.py says which file of each).
EVAL_FORMATS = ("csv", "msrvtt", "vatex", "activitynet", "kinetics", "ssv2", "charades",
                "charades-sta")  # fmt: skip
# A video named without a suffix (MSR-VTT's video7010, SSv2's 12345) is looked for with these
# suffixes first (the benchmarks' own), then any other video suffix.
EVAL_PREFERRED_SUFFIXES = (".mp4", ".webm", ".mkv")


# ------------------------------------------------ issue 29: `videoprism eval`, the results
# The result JSON's schema number: `read_records` refuses another (a field renamed or its
# meaning changed raises it), so that a report never mixes what it cannot compare.
EVAL_RECORD_SCHEMA = 1
# The tasks a record may hold, each written by its own command.
EVAL_TASKS = ("retrieval", "classification", "probe", "moments")
# Metrics whose names end so are ranks (median, mean): shown as they are. Every other
# metric is a fraction in [0, 1], shown in percent.
EVAL_RANK_METRICS = ("MdR", "MnR")
# A record's file name: "<model>__<dataset>__<model key>-<settings key>__<task>.json", each
# part keeping only these characters (others become "_"), so a run again with the same
# weights and settings replaces its last, and one with other weights or settings is kept.
EVAL_FILE_SEPARATOR = "__"
EVAL_FILE_CHARACTERS = "A-Za-z0-9._+-"
# Hex digits of a record's settings key (a hash of its sampling and settings) and of the
# model key in its file name: enough that two runs of one model and dataset never meet.
EVAL_SETTINGS_KEY_DIGITS = 8
# Entries of a record's settings (at any depth) that say what a run found or how it went,
# not how it was asked to run: left out of the settings key, so that a run again (fewer
# videos failing, everything from the cache, other losses) keeps its key and replaces its
# last record.
EVAL_SETTINGS_OUTCOMES = frozenset({
    "captions", "clips", "labels", "queries", "queries_used", "queries_failed", "windows",
    "windows_failed", "embedded", "failed_videos", "failed", "losses", "tokens", "used",
    "missing", "total",
})  # fmt: skip


# ---------------------------------------------- issue 29: `videoprism eval moments` (grounding)
# Charades-STA videos last about 30 s and their annotated moments about 8 s: windows of 4 s
# (half a typical moment, so that its middle windows lie wholly inside it; 16 frames at 4 fps)
# every 1 s, so that an edge falls within a second of some window's centre. A query's top
# moment counts as found at each of these IoUs with the annotation (R@1 at IoU ≥ t).
EVAL_MOMENT_CLIP_SECONDS = 4.0
EVAL_MOMENT_STRIDE_SECONDS = 1.0
EVAL_MOMENT_IOUS = (0.3, 0.5, 0.7)


# ----------------------------------------- issue 29: `eval retrieval`, `eval classification`
# Zero-shot classification's prompt templates (`eval classification --templates`). The
# official repository publishes one, its demo's PROMPT_TEMPLATE; the paper's own template
# set is not published with the checkpoints, so the ensemble is ours: video phrasings in
# the manner of CLIP's ImageNet ensemble. Each label's prompts are embedded, normalised,
# averaged and normalised again (CLIP's ensembling).
EVAL_TEMPLATE_ENSEMBLE = (
    "a video of {}.",
    "a video of a person {}.",
    "a video of someone {}.",
    "a clip of {}.",
    "a short clip of {}.",
    "footage of {}.",
    "a recording of {}.",
    "a video showing {}.",
    "a blurry video of {}.",
    "a close-up video of {}.",
    "an amateur video of {}.",
    "a video of the action: {}.",
    "{}.",
)
EVAL_TEMPLATE_SETS = {"official": (PROMPT_TEMPLATE,), "ensemble": EVAL_TEMPLATE_ENSEMBLE}
# The level of the bootstrap intervals every task reports.
EVAL_INTERVAL_LEVEL = 0.95


# ---------------------------------------------------- issue 29: `eval probe`, the two probes
# The linear probe on pooled features (`apps/evaluation/probe.py`): a softmax regression on
# standardised features, full-batch Adam from zero weights (deterministic), lightly
# regularised: the features are standardised, so one step size fits every model.
EVAL_LINEAR_PROBE_STEPS = 300
EVAL_LINEAR_PROBE_LEARNING_RATE = 0.01
EVAL_LINEAR_PROBE_WEIGHT_DECAY = 1e-4
# The attentive probe's training (`eval probe`'s defaults): the pooler and the head only,
# on cached features, so epochs are cheap.
EVAL_PROBE_EPOCHS = 20
EVAL_PROBE_LEARNING_RATE = 1e-3
EVAL_PROBE_BATCH_SIZE = 32


# ------------------------------------------------- issue 29: `videoprism eval`, the cache
# Where `eval` keeps its embeddings (one LanceDB database; a table per model, dataset, kind
# and sampling): this environment variable, else the folder below.
EVAL_CACHE_ENV = "VIDEOPRISM_EVAL_CACHE"
EVAL_CACHE_FOLDER = "~/.cache/videoprism/eval"
# What the cache stores of a clip: "video" (the pooled, normalised (D,) embedding) or
# "features" (the (T, P, D) token features, stored in float16: a clip holds T·P vectors,
# 4096 for the base model's 16 frames of 16 × 16 patches, and half the bytes is half the
# disk and memory; float16's ~3 significant digits are far finer than a probe resolves).
EVAL_CACHE_KINDS = ("video", "features")
# Hex digits of `model_key`: 64 bits, no two models of one user's cache collide.
EVAL_MODEL_KEY_DIGITS = 16
# Bytes of rows one read of the cache fetches at a time (they are copied into the result,
# held twice meanwhile, and Lance's buffers grow with it): `ID_BATCH` clips of pooled vectors,
# two or three of the base model's full token features (16 × 256 × 768 in float16: 6 MiB).
EVAL_CACHE_READ_BYTES = 16 * 2**20
# The embedding cache's format, part of each video table's name: bump it when decoding or
# preprocessing changes what a clip embeds to, so that rows of the older format are not
# served (they stay on disk, unread, until the cache folder is cleared).
EVAL_CACHE_FORMAT = 1


# --------------------------------------------- issue 29 review: the bootstrap's resamples
# Resamples of every evaluation's bootstrap interval (`eval … --bootstrap`, the tasks' and
# probes' `bootstrap` default): at 1000 the 2.5th and 97.5th percentiles each rest on 25
# resamples, stable to well under a point of a rate on benchmark-sized sets, and resampling
# cached scores costs seconds, not a model run.
EVAL_BOOTSTRAP_SAMPLES = 1000


# ------------------------------------------ issue 29: `videoprism eval`, the data and its CLI
# Missing videos the log names before a task runs (the first ones; the record lists all):
# enough to see a pattern (a wrong folder, a suffix), few enough to leave the log readable.
EVAL_MISSING_SHOWN = 5


# --- Export (issue 30): ONNX with a free batch from every backend ---
# ONNX from the TensorFlow backend is exported by a child process under this backend from
# the same weights (`onnx_export`): tf2onnx takes tens of times the weights' size in memory
# (the base model's export was killed at 13 GB; benchmarks/README.md, "Export memory").
ONNX_ROUTE_BACKEND = "jax"


# ------------------------------------------ issue 30: execution engines (engine/, runtime.Encoder)
# `Encoder(engine=…)` / `--engine`: "auto" picks one of the others. The video tower runs on
# the engine; the text tower stays on Keras (float32).
ENGINES = ("auto", "keras", "openvino", "onnxruntime")
# The CLI's --engine where the flag is not given (unset: "auto"): e.g. "keras" keeps every
# command on the reference implementation, as a deployment (or our test suite) may want.
ENGINE_ENV = "VIDEOPRISM_ENGINE"
# What an engine is asked to compute in.
PRECISIONS = ("float32", "bfloat16", "int8")
# "auto"'s order per precision, the first installed one wins (figures: benchmarks/README.md,
# "Engines": OpenVINO is the fastest CPU path at every tier). Keras runs every precision on
# every backend (its int8 through oneDNN's int8 GEMM on TensorFlow and PyTorch,
# `kernels.int8_matmul`), the last resort of each, and auto's float32 wherever OpenVINO's
# float32 does not match it on a model (`engine.build.EngineMismatch`). ONNX Runtime's
# float32 is slower than Keras' here, so auto never picks it for float32.
ENGINE_PREFERENCE = {"float32": ("openvino", "keras"), "bfloat16": ("openvino", "keras"),
                     "int8": ("openvino", "onnxruntime", "keras")}  # fmt: skip
# int8 on OpenVINO is calibrated (NNCF) on at most this many clips of the first `video()`
# call, unless `calibration=` gives them: NNCF's transformer mode needs few, and each costs
# a float32 forward pass of the model at build time.
CALIBRATION_CLIPS = 8
# The engines' artefacts live in this folder of `hub.cache_root()` (or `cache_dir=`), one
# folder per key. The format is part of every key: bump it when what an artefact holds or
# how it is exported changes, so that older artefacts are not read (they stay, unread).
ENGINE_CACHE_FOLDER = "engines"
ENGINE_CACHE_FORMAT = 2  # 2: OpenVINO's settings checked on a fixed batch of one clip
# Hex digits of an artefact's key in its folder name (the full sha256 is in its meta.json).
ENGINE_KEY_DIGITS = 32


# ------------------------------------- issue 30 (cli): --dtype int8 and --engine at the CLI
# The --dtype values that are Keras dtype policies: what training commands take (a quantized
# model is not trained) and what `from_preset(dtype=…)` is given.
KERAS_DTYPES = ("float32", "bfloat16", "mixed_bfloat16")
# --dtype → the precision an engine is asked for (`runtime.Encoder(precision=…)`).
CLI_DTYPE_PRECISION = {"float32": "float32", "bfloat16": "bfloat16",
                       "mixed_bfloat16": "bfloat16", "int8": "int8"}  # fmt: skip
# The engine of an index that records none: it was written before engines, by Keras.
INDEX_LEGACY_ENGINE = "keras"

# ---- Bench (issue 30): XLA's CPU options for float32 JAX forward passes
# (backend.float32_compiler_options; jax.jit's compiler_options). jaxlib 0.10 hands each dot
# to YNNPACK by default; oneDNN's GEMM (the one TensorFlow runs) brings our JAX float32
# forward pass nearer TensorFlow's, the same numbers to ~1e-6 — but makes int8 dots several
# times slower (YNNPACK's int8 GEMM is the fast one), so it is for float32 executables only,
# never process-wide XLA_FLAGS (benchmarks/README.md, "JAX float32: XLA's CPU options").
# Measured on x86-64 Linux only: elsewhere nothing is set.
XLA_CPU_FLOAT32_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_cpu_use_onednn": True,
    "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}
# Opt-in ("1"), because of jaxlib 0.10.2: a process of our test suite crashed at exit
# destroying such a program (`OneDnnFusionThunk::~OneDnnFusionThunk`, once in several runs,
# not reproduced alone), and it cannot write them to the persistent compilation cache
# ("ToProto is not implemented for thunk kind: onednn-fusion"): each process compiles them
# again. JAX's warning about that write, and only that one, is filtered when on.
XLA_ONEDNN_OPT_IN = "VIDEOPRISM_XLA_ONEDNN"
XLA_ONEDNN_CACHE_WARNING = (
    r"(?s)Error writing persistent compilation cache entry .*thunk kind: onednn-fusion"
)

# ---- Ray on engines (issue 30): where an actor installs the driver's artefact when its
# node's engine cache already holds another build under the same key (e.g. calibrated on
# other first clips): a folder of that cache, one subfolder per shipped build.
RAY_SHIPPED_FOLDER = "ray"
