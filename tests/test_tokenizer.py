"""VideoPrismTokenizer: the official text pipeline exactly, bad input, presets.

Backend-independent: nothing here imports Keras.
"""

import base64
import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from videoprism_keras.tokenizer import VideoPrismTokenizer, canonicalize_text

WORDS = ["video", "person", "drum", "bottle", "water", "cat", "dog", "runs", "plays", "a", "on"]


def train_spm(**ids) -> bytes:
    """A tiny unigram SentencePiece model, trained in memory on a generated corpus."""
    import sentencepiece

    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=8)) + "." for _ in range(300)]
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=out,
        vocab_size=60,
        hard_vocab_limit=False,
        model_type="unigram",
        minloglevel=2,
        **ids,
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def with_bos() -> bytes:
    return train_spm(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)  # SentencePiece's defaults


@pytest.fixture(scope="module")
def t5_like() -> bytes:
    """No BOS, pad 0, as in T5's vocabulary (the released LvT models')."""
    return train_spm(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)


@pytest.fixture(scope="module")
def golden(golden_dir, media_dir):
    data = json.loads((golden_dir / "tokenizer_test_spm.json").read_text())
    return data, VideoPrismTokenizer(media_dir / data["spm"], max_length=data["max_length"])


# ------------------------------------------------------------------ parity
def test_golden_ids_mask_and_canonical_text(golden):
    data, tok = golden
    assert [canonicalize_text(s) for s in data["strings"]] == data["canonicalized"]
    ids, mask = tok.tokenize_texts(data["strings"])
    np.testing.assert_array_equal(ids, np.array(data["token_ids"]))
    np.testing.assert_array_equal(mask, 1 - np.array(data["paddings"], dtype=int))
    assert ids.dtype == mask.dtype == np.int32
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (1, 2, -1, 0)
    assert tok.vocabulary_size == 1000


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("Hello, World!", "hello world."),
        ("Hello,World..", "hello world."),
        ("  Hello   WORLD", "hello world."),
        ("", "."),
        ("!?", "."),
        ("a\u3000b\nc\u00a0d", "a b c d."),  # Unicode whitespace splits too
        ("Ünïcode—dash «x»", "ünïcode—dash «x»."),  # only ASCII punctuation goes
        ("It's 3:30", "it s 3 30."),
    ],
)
def test_canonicalize_text(text, canonical):
    assert canonicalize_text(text) == canonical
    assert canonicalize_text(canonical) == canonical  # idempotent


def test_canonicalize_text_rejects_non_strings():
    with pytest.raises(TypeError, match="text must be a str; got bytes"):
        canonicalize_text(b"hello")


def test_bos_only_when_the_model_has_one(with_bos, t5_like):
    tok = VideoPrismTokenizer(with_bos)
    ids, mask = tok.tokenize_texts(["a cat runs"])
    assert ids[0, 0] == tok.bos_id == 1
    tok = VideoPrismTokenizer(t5_like)
    ids, mask = tok.tokenize_texts(["a cat runs"])
    assert tok.bos_id == -1 and tok.pad_id == 0
    real = ids[0][mask[0] == 1]
    assert tok.eos_id not in real and 0 not in real  # no EOS, no BOS, no pad inside
    assert tok.detokenize(ids[0]) == "a cat runs."


def test_truncation_padding_and_max_length_override(with_bos):
    tok = VideoPrismTokenizer(with_bos, max_length=6)
    ids, mask = tok.tokenize_texts(["video " * 50, "cat"])
    assert ids.shape == mask.shape == (2, 6) and mask[0].all()
    assert mask[1].tolist() == sorted(mask[1].tolist(), reverse=True)  # padding at the end
    assert 0 < mask[1].sum() < 6 and (ids[1][mask[1] == 0] == 0).all()
    full, _ = tok.tokenize_texts(["video " * 50], max_length=200)
    np.testing.assert_array_equal(ids[0], full[0, :6])  # truncation keeps the prefix
    assert tok.tokenize_texts(["cat"], max_length=np.int64(3))[0].shape == (1, 3)
    assert tok.max_length == 6


def test_canonicalize_false_encodes_the_text_as_given(with_bos):
    raw, canonical = (
        VideoPrismTokenizer(with_bos, canonicalize=False),
        VideoPrismTokenizer(with_bos),
    )
    np.testing.assert_array_equal(
        raw.tokenize_texts(["a cat."])[0], canonical.tokenize_texts(["A Cat!"])[0]
    )
    assert not np.array_equal(
        raw.tokenize_texts(["A Cat!"])[0], canonical.tokenize_texts(["A Cat!"])[0]
    )


def test_add_bos_and_add_eos_switches_as_officially(media_dir, tmp_path):
    # The official test model at length 6, "blah" as given: [80, 180, 60] with BOS 1, EOS 2.
    tok = VideoPrismTokenizer(media_dir / "test_spm.model", max_length=6, canonicalize=False)
    assert tok.tokenize_texts(["blah"])[0].tolist() == [[1, 80, 180, 60, 0, 0]]  # default
    ids, mask = tok.tokenize_texts(["blah"], add_bos=False)
    assert ids.tolist() == [[80, 180, 60, 0, 0, 0]] and mask.tolist() == [[1, 1, 1, 0, 0, 0]]
    assert tok(["blah"], add_eos=True)["token_ids"].tolist() == [[1, 80, 180, 60, 2, 0]]
    # EOS comes before truncation, as officially: a text cut at max_length loses it.
    assert tok.tokenize_texts(["blah blah"], add_eos=True)[0][0, -1] != tok.eos_id
    # As settings: saved with the preset, and read back.
    eos = VideoPrismTokenizer(media_dir / "test_spm.model", add_bos=False, add_eos=True)
    eos.save_to_preset(tmp_path)
    again = VideoPrismTokenizer.from_preset(tmp_path)
    assert (again.add_bos, again.add_eos) == (False, True)
    assert VideoPrismTokenizer.from_config(eos.get_config()).add_eos is True
    with pytest.raises(TypeError, match="Received: add_bos='no'"):
        tok.tokenize_texts(["blah"], add_bos="no")


# ------------------------------------------------------------- call, decode
def test_call_gives_backbone_inputs_and_detokenize_inverts(golden):
    _, tok = golden
    out = tok(["a dog.", "A person drumming on a bottle"])
    assert set(out) == {"token_ids", "padding_mask"}
    assert out["token_ids"].shape == (2, 16) and out["padding_mask"].dtype == np.int32
    expected = ["a dog.", "a person drumming on a bottle."]
    assert tok.detokenize(out["token_ids"], out["padding_mask"]) == expected
    assert tok.detokenize(out["token_ids"]) == expected  # trailing zeros are padding
    assert tok.detokenize(out["token_ids"][0]) == "a dog."  # one sequence → one string
    assert tok.detokenize(out["token_ids"].tolist()) == expected


def test_detokenize_keeps_an_inner_id_zero_and_honours_the_mask(golden):
    _, tok = golden  # here id 0 is <unk>, a real token
    ids, mask = tok.tokenize_texts(["hello"])
    word = ids[0][mask[0] == 1][1:].tolist()  # without BOS
    assert tok.detokenize(word) == "hello."
    assert tok.detokenize([*word, 0, *word, 0, 0]).count("⁇") == 1  # the inner one only
    keep = [1] * len(word)
    assert tok.detokenize([*word, 0, 0], padding_mask=[*keep, 1, 0]).count("⁇") == 1
    assert tok.detokenize([*word, 0], padding_mask=[*map(bool, keep), False]) == "hello."
    assert tok.detokenize(np.zeros((2, 0), np.int32)) == ["", ""]


@pytest.mark.parametrize(
    "ids, mask, error, message",
    [
        ([[1000]], None, ValueError, r"must lie in \[0, 1000\)"),
        ([-1, 5], None, ValueError, r"must lie in \[0, 1000\)"),
        (np.zeros((1, 2, 3), np.int32), None, ValueError, "1-D or 2-D"),
        ([5, 6], [1], ValueError, "padding_mask of the same shape"),
        ([1.5], None, TypeError, "must be integers"),
    ],
)
def test_detokenize_bad_input(golden, ids, mask, error, message):
    _, tok = golden
    with pytest.raises(error, match=message):
        tok.detokenize(ids, mask)


# ----------------------------------------------------------------- inputs
def test_accepted_batches(golden):
    _, tok = golden
    one = tok.tokenize_texts(["hello"])[0]
    for texts in ("hello", b"hello", ("hello",), [b"hello"], (t for t in ["hello"])):
        np.testing.assert_array_equal(tok.tokenize_texts(texts)[0], one)
    np.testing.assert_array_equal(tok.tokenize_texts(np.array(["hello", "hello"]))[0][1], one[0])
    ids, mask = tok.tokenize_texts([])
    assert ids.shape == mask.shape == (0, 16) and ids.dtype == np.int32
    assert tok.tokenize_texts([""])[1].sum() == 3  # BOS, "▁", "." still


@pytest.mark.parametrize(
    "texts, error, message",
    [
        (None, TypeError, "texts must be a string or a list of strings; got NoneType"),
        (3, TypeError, "got int"),
        (["ok", None], TypeError, r"texts\[1\] must be a str; got NoneType"),
        ([3], TypeError, r"texts\[0\] must be a str; got int"),
        ([["nested"]], TypeError, r"texts\[0\] must be a str; got list"),
        ([b"ok", b"\xff\xfe"], ValueError, r"texts\[1\] is bytes that are not valid UTF-8"),
    ],
)
def test_bad_texts(golden, texts, error, message):
    _, tok = golden
    with pytest.raises(error, match=message):
        tok.tokenize_texts(texts)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8", None])
def test_bad_max_length(golden, media_dir, bad):
    _, tok = golden
    if bad is not None:  # None means "the tokenizer's own" in tokenize_texts
        with pytest.raises(ValueError, match=r"max_length must be a positive integer"):
            tok.tokenize_texts(["ok"], max_length=bad)
    with pytest.raises(ValueError, match=r"max_length must be a positive integer"):
        VideoPrismTokenizer(media_dir / "test_spm.model", max_length=bad)


def test_bad_models(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.model"):
        VideoPrismTokenizer(tmp_path / "missing.model")
    with pytest.raises(FileNotFoundError, match="not a file"):
        VideoPrismTokenizer(tmp_path)
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"junk\.model' is not a SentencePiece model"):
        VideoPrismTokenizer(str(tmp_path / "junk.model"))
    with pytest.raises(ValueError, match=r"proto \(bytes\) is not a SentencePiece model"):
        VideoPrismTokenizer(b"")
    with pytest.raises(TypeError, match="proto must be a path to, or the bytes of"):
        VideoPrismTokenizer(12)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox, jumps! " * 37_500,  # words
        "x" * 1_000_000,  # one "word"
        "?" * 1_000_000,  # canonicalises to "."
        "视频" * 166_667,  # 3-byte characters outside the vocabulary
    ],
)
def test_one_megabyte_text_in_bounded_time(golden, text):
    _, tok = golden
    # The CPU time of this process, not the wall clock: other processes sharing the cores
    # do not count. A generous bound, against quadratic work.
    start = time.process_time()
    ids, mask = tok.tokenize_texts([text])
    assert time.process_time() - start < 3.0
    assert ids.shape == (1, 16) and mask[0, 0] == 1


# -------------------------------------------------------- config, presets
def test_bytes_path_config_and_preset_round_trips(tmp_path, media_dir):
    path = media_dir / "test_spm.model"
    tok = VideoPrismTokenizer(path, max_length=10, canonicalize=False)
    config = tok.get_config()
    assert json.loads(json.dumps(config)) == config
    assert base64.b64decode(config["proto"]) == path.read_bytes() == tok.proto
    tok.save_to_preset(tmp_path / "preset")
    assert (tmp_path / "preset" / "assets" / "tokenizer" / "vocabulary.spm").is_file()
    loaded = VideoPrismTokenizer.from_preset(tmp_path / "preset")
    assert (loaded.max_length, loaded.canonicalize) == (10, False)
    assert VideoPrismTokenizer.from_preset(str(tmp_path / "preset"), max_length=5).max_length == 5
    copies = [
        VideoPrismTokenizer(path.read_bytes(), max_length=10, canonicalize=False),
        VideoPrismTokenizer(str(path), max_length=10, canonicalize=False),
        VideoPrismTokenizer.from_config(config),
        VideoPrismTokenizer.from_preset(path, max_length=10, canonicalize=False),
        loaded,
    ]
    texts = ["Hello, World!", "drumming"]
    for copy in copies:
        np.testing.assert_array_equal(copy.tokenize_texts(texts)[0], tok.tokenize_texts(texts)[0])
        assert copy.get_config() == config
    assert "test_spm.model" in repr(tok)


def test_from_preset_reads_a_keras_hub_preset_directory(tmp_path, media_dir):
    """keras_hub's tokenizer.json describes its own layer: none of it applies here."""
    (tmp_path / "assets" / "tokenizer").mkdir(parents=True)
    (tmp_path / "assets" / "tokenizer" / "vocabulary.spm").write_bytes(
        (media_dir / "test_spm.model").read_bytes()
    )
    keras_hub_config = {
        "module": "keras_hub.src.models.video_prism.video_prism_tokenizer",
        "class_name": "VideoPrismTokenizer",
        "config": {"name": "video_prism_tokenizer", "proto": None, "sequence_length": None,
                   "add_bos": False, "add_eos": False, "config_file": "tokenizer.json"},
        "registered_name": "keras_hub>VideoPrismTokenizer",
    }  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(json.dumps(keras_hub_config))
    tok = VideoPrismTokenizer.from_preset(tmp_path)
    assert (tok.max_length, tok.canonicalize, tok.vocabulary_size) == (64, True, 1000)


def test_from_preset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no tokenizer \(assets/tokenizer"):
        VideoPrismTokenizer.from_preset(tmp_path)
    (tmp_path / "ckpt.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="official checkpoint, which holds no tokenizer"):
        VideoPrismTokenizer.from_preset(tmp_path / "ckpt.npz")
    with pytest.raises(ValueError, match="unknown preset 'no_such_preset'"):
        VideoPrismTokenizer.from_preset("no_such_preset")
    with pytest.raises(ValueError, match="video-only"):
        VideoPrismTokenizer.from_preset("videoprism_public_v1_base")


def test_builtin_preset_tokenizer_from_the_cache(caches, media_dir, monkeypatch):
    from videoprism_keras import hub

    monkeypatch.setattr(hub, "TOKENIZER_URL", (media_dir / "test_spm.model").as_uri())
    tok = VideoPrismTokenizer.from_preset("videoprism_lvt_public_v1_base")
    assert tok.vocabulary_size == 1000
    assert (caches[0] / "tokenizers" / "c4_en.spm").is_file()


def test_builtin_preset_tokenizer_offline_names_the_file(caches, monkeypatch, tmp_path):
    from videoprism_keras import hub

    monkeypatch.setattr(hub, "TOKENIZER_URL", (tmp_path / "nowhere.model").as_uri())
    with pytest.raises(hub.PresetUnavailableError, match=r"c4_en\.spm"):
        VideoPrismTokenizer.from_preset("videoprism_lvt_public_v1_base")
    assert not list((caches[0] / "tokenizers").glob("*partial*"))


def test_module_imports_without_keras():
    code = "import sys, videoprism_keras.tokenizer; sys.exit('keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_one_asset_path_shared_with_the_hub(tmp_path, media_dir):
    """The tokenizer and the preset writer (`saving`) must agree on where the model lives."""
    from videoprism_keras import constants, saving, tokenizer

    assert tokenizer.ASSET is constants.TOKENIZER_ASSET is saving.TOKENIZER_ASSET
    VideoPrismTokenizer(media_dir / "test_spm.model").save_to_preset(tmp_path)
    assert (tmp_path / constants.TOKENIZER_ASSET).is_file()
