"""The documentation's runnable examples run, and the README's quick start runs as pasted.

The convention: a fenced Python block whose previous line is `<!-- runnable -->` (an HTML
comment, invisible on GitHub and on the site) must run offline, from the repository root,
on the small official test checkpoint and generated data, in a few seconds. The marked
blocks of one page run in order in one fresh interpreter, as a reader would paste them
one after another, so later blocks may use earlier names. Examples name the fixtures as
`../shared/...`, the path they have beside a checkout; when `VIDEOPRISM_SHARED` points
elsewhere, that path is substituted. (The docs build itself, `mkdocs build --strict`, is
the Makefile's `docs-check`, a prerequisite of `make test`.)
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
# The marker, then a fenced block: its info string, its body, its closing fence.
MARKED = re.compile(r"^<!-- runnable -->\n```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# Pages whose examples all run offline on small inputs: each must have a marked block.
MUST_RUN = ("README.md", "docs/model.md", "docs/presets.md", "docs/text.md", "docs/video.md",
            "docs/apps.md", "docs/index-search.md")  # fmt: skip
SHARED_IN_DOCS = "../shared"


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def runnable_blocks(text: str) -> list[str]:
    """The bodies of the page's marked blocks, in order; a marker before anything but a
    Python fence is a mistake in the page, not a block to skip."""
    markers = text.count(MARKER)
    blocks = MARKED.findall(text)
    if len(blocks) != markers or any(info.strip() != "python" for info, _ in blocks):
        raise ValueError(f"{MARKER} must stand on the line just before a ```python fence")
    return [body for _, body in blocks]


def _shared() -> Path:
    return Path(os.environ.get("VIDEOPRISM_SHARED", ROOT.parent / "shared")).resolve()


def _script(blocks: list[str]) -> str:
    script = "\n".join(blocks)
    shared = _shared()
    if shared != (ROOT.parent / "shared").resolve():
        script = script.replace(SHARED_IN_DOCS, shared.as_posix())
    return script


def _environment(caches: Path) -> dict:
    # Offline, this checkout's sources, and caches of the run's own (the compiled programs
    # that `runtime.Encoder` keeps would otherwise go to the user's home).
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    env.update(VIDEOPRISM_CACHE=str(caches / "videoprism"), HF_HOME=str(caches / "hf"))
    env.setdefault("KERAS_BACKEND", "jax")
    env["VIDEOPRISM_SHARED"] = str(_shared())
    return env


def test_marked_blocks_are_found_and_a_misplaced_marker_is_an_error():
    page = f"x\n{MARKER}\n```python\nprint(1)\n```\n\n```python\nprint(2)\n```\n"
    assert runnable_blocks(page) == ["print(1)\n"]
    with pytest.raises(ValueError, match="python fence"):
        runnable_blocks(f"{MARKER}\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="python fence"):
        runnable_blocks(f"{MARKER}\n\n```python\nprint(1)\n```\n")


@pytest.mark.parametrize("name", MUST_RUN)
def test_pages_that_must_have_runnable_examples_have_them(name):
    assert runnable_blocks((ROOT / name).read_text(encoding="utf-8")), (
        f"{name} has no block marked {MARKER}"
    )


def test_readme_quick_start_is_its_first_python_block_and_marked_runnable():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    first = FENCE.search(quick_start)
    assert first is not None, "the README's Quick start has no Python block"
    assert quick_start[: first.start()].rstrip().endswith(MARKER)
    assert "../shared/golden/lvt_small.ckpt.npz" in first.group(1)  # offline, small


def test_readme_is_a_landing_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md is the landing page: details go to docs/"
    # `mkdocs build --strict` checks the site's links; the README is not part of the site.
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into the documentation"
    assert not [t for t in local if not (ROOT / t).exists()]


def test_the_shared_path_is_substituted_when_the_fixtures_live_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEOPRISM_SHARED", str(tmp_path))
    expected = f'load("{tmp_path.as_posix()}/media/a.mp4")'
    assert _script(['load("../shared/media/a.mp4")']) == expected


@pytest.mark.parametrize(
    "page", [p for p in PAGES if MARKER in p.read_text(encoding="utf-8")], ids=_name
)
def test_runnable_examples_run_offline_as_pasted(page, tmp_path, golden_dir):
    blocks = runnable_blocks(page.read_text(encoding="utf-8"))
    script = tmp_path / "example.py"
    script.write_text(_script(blocks), encoding="utf-8")
    # cwd is the repository root, as a reader pastes them; anything an example writes goes
    # to a temporary folder of its own (the examples use tempfile), not the checkout.
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=_environment(tmp_path),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"{_name(page)}'s runnable examples failed:\n{done.stderr[-3000:]}"
