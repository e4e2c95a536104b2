import json
from datetime import UTC, datetime

import pytest
from PIL.PngImagePlugin import PngInfo

from legacy.metadata import lora_name, parse_timestamp, read_metadata, read_sidecar, timestamp_of
from tests.legacy.tree import A1111_TEXT, image_bytes

MTIME = datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()


def png_with(path, parameters: str | None = None, seed: int = 1):
    info = None
    if parameters is not None:
        info = PngInfo()
        info.add_text("parameters", parameters)
    path.write_bytes(image_bytes(seed, pnginfo=info))
    return path


def with_sidecar(tmp_path, fields, name="img.png", parameters=None):
    image = png_with(tmp_path / name, parameters)
    sidecar = image.with_suffix(".json")
    sidecar.write_text(fields if isinstance(fields, str) else json.dumps(fields))
    return image


# --- sidecars ---------------------------------------------------------------------------------


def test_sidecar_fields_are_read_with_their_types(tmp_path):
    image = with_sidecar(
        tmp_path,
        {
            "prompt": " a lighthouse ",
            "negative_prompt": "fog",
            "model": "sd15",
            "width": 512,
            "height": "768",
            "steps": 25.0,
            "guidance_scale": "7.5",
            "seed": 42,
        },
    )
    meta = read_metadata(image, caption_file=False)
    assert (meta.source, meta.prompt, meta.negative_prompt, meta.model) == ("sidecar", "a lighthouse", "fog", "sd15")
    assert (meta.width, meta.height, meta.steps, meta.guidance_scale, meta.seed) == (512, 768, 25, 7.5, 42)
    assert meta.problems == ()


def test_sidecar_wins_over_the_a1111_chunk(tmp_path):
    image = with_sidecar(tmp_path, {"prompt": "from the sidecar"}, parameters=A1111_TEXT)
    meta = read_metadata(image, caption_file=False)
    assert (meta.source, meta.prompt, meta.seed) == ("sidecar", "from the sidecar", None)


def test_invalid_json_sidecar_is_a_problem_not_an_error(tmp_path):
    image = with_sidecar(tmp_path, '{"prompt": "unterminated')
    meta = read_metadata(image, caption_file=False)
    assert meta.problems == ("sidecar is not valid JSON",)
    assert (meta.source, meta.prompt) == ("", "")


def test_invalid_json_sidecar_falls_back_to_the_a1111_chunk(tmp_path):
    image = with_sidecar(tmp_path, "{nope", parameters=A1111_TEXT)
    meta = read_metadata(image, caption_file=False)
    assert (meta.source, meta.seed) == ("a1111", 123456789)
    assert meta.problems == ("sidecar is not valid JSON",)


def test_sidecar_that_is_not_an_object_is_a_problem(tmp_path):
    image = with_sidecar(tmp_path, "[1, 2]")
    assert read_metadata(image, caption_file=False).problems == ("sidecar is a JSON list, not an object",)


def test_sidecar_named_after_the_full_file_name_is_found(tmp_path):
    image = png_with(tmp_path / "img.png")
    (tmp_path / "img.png.json").write_text(json.dumps({"prompt": "old stager form"}))
    assert read_metadata(image, caption_file=False).prompt == "old stager form"


def test_read_sidecar_of_no_path_is_empty():
    sidecar = read_sidecar(None)
    assert (sidecar.data, sidecar.problems) == (None, ())


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"steps": True}, "steps True is not an integer from 1 to 2147483647"),
        ({"seed": "abc"}, "seed 'abc' is not an integer from 0 to 9223372036854775807"),
        ({"seed": -1}, "seed -1 is not an integer from 0 to 9223372036854775807"),
        ({"steps": 7.5}, "steps 7.5 is not an integer from 1 to 2147483647"),
        ({"width": 0}, "width 0 is not an integer from 1 to 2147483647"),
        ({"guidance_scale": False}, "guidance_scale False is not a non-negative number"),
        ({"guidance_scale": "NaN"}, "guidance_scale 'NaN' is not a non-negative number"),
        ({"guidance_scale": [7]}, "guidance_scale of type list is not a non-negative number"),
        ({"prompt": 12}, "prompt 12 is not text"),
    ],
)
def test_bad_values_are_dropped_and_described(tmp_path, fields, problem):
    meta = read_metadata(with_sidecar(tmp_path, fields), caption_file=False)
    field = next(iter(fields))
    assert getattr(meta, field) in (None, "")
    assert meta.problems == (problem,)


def test_nan_written_by_python_json_is_refused(tmp_path):
    meta = read_metadata(with_sidecar(tmp_path, '{"guidance_scale": NaN, "steps": 20}'), caption_file=False)
    assert (meta.guidance_scale, meta.steps) == (None, 20)
    assert len(meta.problems) == 1


def test_problems_never_show_paths(tmp_path):
    fields = {
        "seed": "/home/someone/secret/seed.txt",
        "lora": {"path": "/home/someone/secret/foo.safetensors", "weight": "heavy"},
    }
    meta = read_metadata(with_sidecar(tmp_path, fields), caption_file=False)
    assert len(meta.problems) == 2
    assert not any("/" in problem or "secret" in problem for problem in meta.problems)


def test_null_values_are_treated_as_absent(tmp_path):
    meta = read_metadata(with_sidecar(tmp_path, {"prompt": None, "seed": None}), caption_file=False)
    assert (meta.prompt, meta.seed, meta.problems) == ("", None, ())


# --- LoRAs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "loras"),
    [
        ({"lora": {"path": "/mnt/loras/foo.safetensors", "weight": 0.6}}, ({"name": "foo", "weight": 0.6},)),
        ({"lora": {"path": "C:\\loras\\foo.safetensors"}}, ({"name": "foo", "weight": 1.0},)),
        (
            {"loras": [{"path": "a/bar.safetensors", "weight": "0.3"}, {"name": "baz", "weight": 2}]},
            ({"name": "bar", "weight": 0.3}, {"name": "baz", "weight": 2.0}),
        ),
        ({"loras": ["foo", "bar.ckpt"]}, ({"name": "foo", "weight": 1.0}, {"name": "bar", "weight": 1.0})),
        ({"loras": {"foo": 0.7}}, ({"name": "foo", "weight": 0.7},)),
        (
            {"lora": "foo", "loras": ["foo", "other"]},
            ({"name": "foo", "weight": 1.0}, {"name": "other", "weight": 1.0}),
        ),
        ({"lora": {"path": "v2/foo.v2.safetensors", "weight": 0.5}}, ({"name": "foo.v2", "weight": 0.5},)),
    ],
)
def test_lora_forms_become_name_and_weight(tmp_path, fields, loras):
    meta = read_metadata(with_sidecar(tmp_path, fields), caption_file=False)
    assert meta.loras == loras
    assert meta.problems == ()


def test_lora_with_a_bad_weight_is_dropped_with_a_problem(tmp_path):
    fields = {"loras": [{"path": "x/foo.safetensors", "weight": "heavy"}, "bar"]}
    meta = read_metadata(with_sidecar(tmp_path, fields), caption_file=False)
    assert meta.loras == ({"name": "bar", "weight": 1.0},)
    assert meta.problems == ("LoRA 'foo' weight 'heavy' is not a number; LoRA dropped",)


def test_lora_entry_naming_no_file_is_dropped(tmp_path):
    meta = read_metadata(with_sidecar(tmp_path, {"loras": [{"weight": 0.5}, 3]}), caption_file=False)
    assert meta.loras == ()
    assert len(meta.problems) == 2


def test_lora_name_strips_only_model_suffixes():
    assert [lora_name(x) for x in ("/a/b/foo.safetensors", "foo.PT", "foo.v2", "D:\\x\\y.ckpt")] == [
        "foo",
        "foo",
        "foo.v2",
        "y",
    ]


# --- A1111 chunk ------------------------------------------------------------------------------


def test_a1111_chunk_is_read_when_there_is_no_sidecar(tmp_path):
    meta = read_metadata(png_with(tmp_path / "a.png", A1111_TEXT), caption_file=False)
    assert meta.source == "a1111"
    assert (meta.prompt, meta.negative_prompt, meta.model) == (
        "a castle on a hill at dawn,",
        "blurry, lowres",
        "sd15-base",
    )
    assert (meta.steps, meta.guidance_scale, meta.seed, meta.width, meta.height) == (30, 7.0, 123456789, 64, 64)
    assert meta.loras == ({"name": "castleStyle", "weight": 0.8},)


def test_a1111_chunk_is_read_from_a_png_whose_pixels_are_truncated(tmp_path):
    path = png_with(tmp_path / "a.png", A1111_TEXT)
    path.write_bytes(path.read_bytes()[:-2000])
    assert read_metadata(path, caption_file=False).seed == 123456789


def test_a_malformed_lora_tag_stays_prompt_text_and_the_rest_is_read(tmp_path):
    meta = read_metadata(png_with(tmp_path / "a.png", "x <lora:foo:.>\nSteps: 3"), caption_file=False)
    assert (meta.prompt, meta.steps, meta.loras, meta.source) == ("x <lora:foo:.>", 3, (), "a1111")


def test_png_that_is_not_a_png_is_a_problem_not_an_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png at all")
    meta = read_metadata(path, caption_file=False)
    assert meta.problems == ("PNG text chunks could not be read",)


def test_png_without_parameters_has_no_metadata(tmp_path):
    meta = read_metadata(png_with(tmp_path / "a.png"), caption_file=False)
    assert meta == type(meta)()


# --- captions ---------------------------------------------------------------------------------


def test_caption_is_read_with_whitespace_collapsed(tmp_path):
    image = png_with(tmp_path / "ref.png")
    (tmp_path / "ref.txt").write_bytes("\ufeff  A sunny\n\n square\twith flags. \n".encode())
    assert read_metadata(image, caption_file=True).caption == "A sunny square with flags."


def test_caption_is_ignored_unless_asked_for(tmp_path):
    image = png_with(tmp_path / "ref.png")
    (tmp_path / "ref.txt").write_text("a caption")
    assert read_metadata(image, caption_file=False).caption == ""


def test_long_caption_is_cut_to_the_label_limit(tmp_path):
    image = png_with(tmp_path / "ref.png")
    (tmp_path / "ref.txt").write_text("word " * 600)
    meta = read_metadata(image, caption_file=True)
    assert len(meta.caption) <= 1000
    assert meta.problems == ("caption cut to 1000 characters",)


def test_caption_that_is_not_utf8_is_read_with_replacements(tmp_path):
    image = png_with(tmp_path / "ref.png")
    (tmp_path / "ref.txt").write_bytes(b"caf\xe9 au lait")
    meta = read_metadata(image, caption_file=True)
    assert meta.caption == "caf\ufffd au lait"
    assert meta.problems == ("caption file is not UTF-8; undecodable bytes were replaced",)


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-03T04:05:06Z", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("2025-02-03T06:05:06+02:00", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("2025-02-03 04:05:06", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("20250203_040506", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        (1738555506, datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        (1738555506.0, datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("1738555506", datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
        (1738555506000, datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ],
)
def test_sidecar_timestamp_forms(value, expected):
    assert timestamp_of({"timestamp": value}, "img.png", MTIME) == (expected, "metadata")


@pytest.mark.parametrize("value", ["yesterday", "20251399_999999", True, 0, float("nan"), [2025], "1e400"])
def test_unusable_sidecar_timestamp_is_ignored(value):
    assert parse_timestamp(value) is None


def test_created_at_is_used_when_there_is_no_timestamp():
    result = timestamp_of({"created_at": "2025-05-05T00:00:00Z"}, "img.png", MTIME)
    assert result == (datetime(2025, 5, 5, tzinfo=UTC), "metadata")


def test_timestamp_wins_over_created_at():
    raw = {"timestamp": "2025-01-01T00:00:00Z", "created_at": "2025-05-05T00:00:00Z"}
    assert timestamp_of(raw, "img.png", MTIME)[0] == datetime(2025, 1, 1, tzinfo=UTC)


def test_bad_sidecar_timestamp_falls_back_to_the_file_name():
    assert timestamp_of({"timestamp": "soon"}, "20250115_123456_x.png", MTIME) == (
        datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC),
        "filename",
    )


def test_bad_sidecar_timestamp_is_recorded_as_a_problem(tmp_path):
    meta = read_metadata(with_sidecar(tmp_path, {"timestamp": "soon"}), caption_file=False)
    assert meta.problems == ("timestamp 'soon' is not a date between 1990 and 2100",)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20250115_123456_sample.png", datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC)),
        ("20250115-123456.png", datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC)),
        ("card_20251013_213529_Two_of_Spades.png", datetime(2025, 10, 13, 21, 35, 29, tzinfo=UTC)),
        ("20251399_999999_x_20250101_000000.png", datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamp_from_the_file_name(name, expected):
    assert timestamp_of({}, name, MTIME) == (expected, "filename")


@pytest.mark.parametrize(
    "name", ["20251399_999999_bad.png", "sunset.png", "120250115_123456.png", "20250115_1234567.png"]
)
def test_file_name_without_a_real_timestamp_falls_back_to_mtime(name):
    moment, source = timestamp_of(None, name, MTIME)
    assert (moment, source) == (datetime(2024, 6, 1, 12, tzinfo=UTC), "mtime")
    assert moment.tzinfo is UTC
