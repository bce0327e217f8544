"""The preparation scripts in ``datasets/``, run on the real samples in ../shared/realdata.

The samples hold no original MPII ``.mat`` (see realdata/SOURCES.md), so the MPII tests
build a small ``RELEASE`` struct with the real file's nesting from the real HRNet/mmpose
JSON sample's numbers and images: converting it back must give that JSON again.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from kpose.data import read_coco, read_mpii
from matlab_structs import struct_array  # tests/ helper

REPO = Path(__file__).resolve().parents[1]
A = np.testing.assert_allclose


def _script(name: str):
    """A ``datasets/<name>.py`` script as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"datasets_{name}",
                                                  REPO / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fails_cleanly(capsys, code: int, *fragments: str) -> None:
    """Exit status 1 and one line on stderr naming what was wrong, no traceback."""
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# ---------------------------------------------------------------- MPII .mat -> JSON

_RECT_FIELDS = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")


def _rect_from_json(entry: dict, flags: dict[int, object]) -> dict:
    """A RELEASE ``annorect`` holding one person of the HRNet JSON (1-based, as the .mat);
    ``flags`` overrides ``is_visible`` (1 by default) per joint id."""
    points = [dict(id=float(j), x=x, y=y, is_visible=flags.get(j, 1.0))
              for j, ((x, y), vis) in enumerate(zip(entry["joints"], entry["joints_vis"]))
              if vis]
    head_x, head_y = entry["joints"][9]
    return dict(x1=head_x - 30.0, y1=head_y - 10.0, x2=head_x + 30.0, y2=head_y + 70.0,
                scale=entry["scale"], objpos={"x": entry["center"][0], "y": entry["center"][1]},
                annopoints={"point": struct_array(points, ("x", "y", "id", "is_visible"))})


@pytest.fixture
def mpii_release(realdata, tmp_path):
    """``RELEASE`` with the three persons of realdata/mpii/test_mpii.json, plus what the
    JSON has no room for: occlusion flags (number, string, missing), a person without
    joints, a person with joints but no objpos/scale, and a test image."""
    people = json.loads((realdata / "mpii" / "test_mpii.json").read_text())
    rects = [_rect_from_json(people[0], {1: 0.0, 7: "0", 12: np.zeros((0, 0))}),
             _rect_from_json(people[1], {}),
             _rect_from_json(people[2], {})]
    no_centre = _rect_from_json(people[1], {})
    no_centre.update(scale=np.zeros((0, 0)), objpos=np.zeros((0, 0)))
    annolist = struct_array([
        dict(image={"name": people[0]["image"]},
             annorect=struct_array([rects[0], dict(scale=1.5, objpos={"x": 5.0, "y": 5.0})],
                                    _RECT_FIELDS)),
        dict(image={"name": people[1]["image"]},
             annorect=struct_array([rects[1], no_centre], _RECT_FIELDS)),
        dict(image={"name": "099999999.jpg"},  # a test image: a centre, no joints
             annorect=struct_array([dict(scale=2.0, objpos={"x": 50.0, "y": 50.0})],
                                    _RECT_FIELDS)),
        dict(image={"name": people[2]["image"]},
             annorect=struct_array([rects[2]], _RECT_FIELDS)),
    ], ("image", "annorect", "frame_sec", "vididx"))
    single_person = np.empty((4, 1), dtype=object)
    for i, value in enumerate(([[1.0]], [[1.0]], np.zeros((0, 0)), [[1.0]])):
        single_person[i, 0] = np.asarray(value)
    release = {"annolist": annolist, "img_train": np.array([[1.0, 1.0, 0.0, 1.0]]),
               "single_person": single_person, "version": "12"}
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    scipy.io.savemat(path, {"RELEASE": release})
    return path, people, realdata / "mpii" / "images"


def test_mpii_mat_converts_to_the_real_hrnet_json(mpii_release, tmp_path, capsys):
    mat, people, _ = mpii_release
    convert = _script("mpii_mat_to_json")
    assert convert.main([str(mat), "--out", str(tmp_path / "annot")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "3 persons in 3 images" in out
    assert "left out 1 person(s) with joints but no objpos/scale" in out
    assert not (tmp_path / "annot" / "valid.json").exists()
    written = json.loads((tmp_path / "annot" / "train.json").read_text())
    # Same persons, order, fields and numbers as the published HRNet/mmpose JSON.
    assert len(written) == len(people)
    for mine, theirs in zip(written, people):
        assert sorted(mine) == sorted(theirs)
        assert mine["image"] == theirs["image"] and mine["joints_vis"] == theirs["joints_vis"]
        A(mine["joints"], theirs["joints"], atol=1e-4)
        A(mine["center"], theirs["center"])
        assert mine["scale"] == theirs["scale"]


def test_mpii_json_records_equal_the_mat_records(mpii_release, tmp_path):
    mat, _, images = mpii_release
    assert _script("mpii_mat_to_json").main([str(mat), "--out", str(tmp_path)]) == 0
    from_json = read_mpii(tmp_path / "train.json", images)
    from_mat = [r for r in read_mpii(mat, images) if r.extra["scale"] is not None]
    assert len(from_json) == len(from_mat) == 3
    for j, m in zip(from_json, from_mat):
        assert j.image_path == m.image_path and j.image_size == m.image_size
        assert j.image_id == m.image_id
        A(j.keypoints[:, :2], m.keypoints[:, :2], atol=1e-3)
        np.testing.assert_array_equal(j.labelled, m.labelled)
        A(j.box, m.box, atol=1e-6)
        assert j.extra["center"] == pytest.approx(m.extra["center"])
        assert j.extra["scale"] == m.extra["scale"]
    # What the JSON cannot carry: occlusion (v = 1 in the .mat) and head boxes.
    assert set(from_mat[0].keypoints[[1, 7], 2]) == {1.0}
    assert from_json[0].keypoints[1, 2] == from_json[0].keypoints[7, 2] == 2.0
    assert from_mat[0].head_size == pytest.approx(0.6 * 100.0)
    assert from_json[0].head_size is None


def test_mpii_validation_split_from_a_list_or_at_random(mpii_release, tmp_path, capsys):
    mat, people, images = mpii_release
    convert = _script("mpii_mat_to_json")
    names = tmp_path / "valid_images.txt"
    names.write_text(f"{people[1]['image']}\nnot_in_mpii.jpg\n\n")
    assert convert.main([str(mat), "--out", str(tmp_path / "listed"), "--valid-images",
                         str(names)]) == 0
    assert "1 of the 2 names" in capsys.readouterr().out
    train = read_mpii(tmp_path / "listed" / "train.json", images)
    valid = read_mpii(tmp_path / "listed" / "valid.json", images)
    assert [r.file_name for r in valid] == [people[1]["image"]]
    assert [r.file_name for r in train] == [people[0]["image"], people[2]["image"]]

    # An HRNet valid.json names the split as well.
    hrnet_valid = tmp_path / "valid.json"
    hrnet_valid.write_text(json.dumps([people[2]]))
    assert convert.main([str(mat), "--out", str(tmp_path / "hrnet"), "--valid-images",
                         str(hrnet_valid)]) == 0
    assert [e["image"] for e in json.loads((tmp_path / "hrnet" / "valid.json").read_text())
            ] == [people[2]["image"]]

    splits = []
    for run in ("a", "b"):
        assert convert.main([str(mat), "--out", str(tmp_path / run), "--valid-fraction",
                             "0.3", "--seed", "4"]) == 0
        splits.append([sorted(e["image"] for e in json.loads(
            (tmp_path / run / f"{name}.json").read_text())) for name in ("train", "valid")])
    assert splits[0] == splits[1]  # the same seed, the same split
    train_images, valid_images = splits[0]
    assert len(valid_images) == 1 and len(train_images) == 2
    assert set(train_images) | set(valid_images) == {p["image"] for p in people}


def test_mpii_single_person_and_image_check(mpii_release, tmp_path, capsys):
    mat, _, images = mpii_release
    convert = _script("mpii_mat_to_json")
    assert convert.main([str(mat), "--out", str(tmp_path), "--single-person",
                         "--images", str(images)]) == 0
    assert len(json.loads((tmp_path / "train.json").read_text())) == 3
    capsys.readouterr()
    _fails_cleanly(capsys, convert.main([str(mat), "--out", str(tmp_path / "x"), "--images",
                                         str(tmp_path)]),
                   "3 image(s) named in the .mat are not in", "005808361.jpg")
    assert not (tmp_path / "x").exists()


def test_mpii_bad_input_fails_with_one_line(realdata, mpii_release, tmp_path, capsys):
    mat, _, _ = mpii_release
    convert = _script("mpii_mat_to_json")
    _fails_cleanly(capsys, convert.main([str(tmp_path / "nope.mat"), "--out", str(tmp_path)]),
                   "MPII .mat file not found", "nope.mat")
    _fails_cleanly(capsys, convert.main([str(realdata / "lsp" / "joints.mat"), "--out",
                                         str(tmp_path)]),
                   "joints.mat", "variable 'RELEASE' not found")
    _fails_cleanly(capsys, convert.main([str(mat), "--out", str(tmp_path), "--valid-fraction",
                                         "1.5"]), "--valid-fraction must lie strictly")
    _fails_cleanly(capsys, convert.main([str(mat), "--out", str(tmp_path), "--valid-images",
                                         str(tmp_path / "missing.txt")]),
                   "--valid-images file not found", "missing.txt")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []}')
    _fails_cleanly(capsys, convert.main([str(mat), "--out", str(tmp_path), "--valid-images",
                                         str(bad)]), "bad.json", "'image' field")
    assert not (tmp_path / "train.json").exists()


def test_mpii_script_exits_non_zero_from_the_shell(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "datasets" / "mpii_mat_to_json.py"),
                             str(tmp_path / "missing.mat"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("mpii_mat_to_json: error: MPII .mat file not found: "
                                     f"{tmp_path / 'missing.mat'}")


# ---------------------------------------------------------------- COCO person crops


@pytest.fixture(scope="module")
def coco_crops(tmp_path_factory, realdata):
    """The real COCO sample cut at 96 px into PNG crops (every person shrinks)."""
    out = tmp_path_factory.mktemp("coco_crops")
    source = realdata / "coco" / "test_coco.json"
    assert _script("coco_person_crops").main([str(source), "--out", str(out), "--size", "96",
                                              "--format", "png"]) == 0
    return source, out


def test_coco_crops_exist_at_their_size_and_read_back(coco_crops):
    source, out = coco_crops
    originals = read_coco(source)
    crops = read_coco(out / "test_coco.json")  # default image folder: out/images
    assert len(crops) == len(originals) == 7
    assert [c.annotation_id for c in crops] == [o.annotation_id for o in originals]
    data = json.loads((out / "test_coco.json").read_text())
    assert data["categories"] == json.loads(source.read_text())["categories"]
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{o.annotation_id:012d}.png" for o in originals)
    for crop in crops:
        assert crop.image_size == (96, 96)
        with Image.open(crop.image_path) as image:
            assert image.size == (96, 96) and image.mode == "RGB"


def test_coco_crop_keypoints_map_back_to_the_original_image(coco_crops):
    from kpose.data.transforms import keypoints_to_image

    source, out = coco_crops
    originals = {r.annotation_id: r for r in read_coco(source)}
    data = json.loads((out / "test_coco.json").read_text())
    for crop, annotation in zip(read_coco(out / "test_coco.json"), data["annotations"]):
        original = originals[annotation["source"]["annotation_id"]]
        matrix = np.array(annotation["source"]["image_to_crop"])
        np.testing.assert_array_equal(crop.keypoints[:, 2], original.keypoints[:, 2])
        back = keypoints_to_image(crop.keypoints, matrix)
        labelled = original.labelled
        A(back[labelled, :2], original.keypoints[labelled, :2], atol=0.05)
        # Square crop: the box is centred, its longer side 96 / margin 2.0 = 48 px.
        x, y, w, h = crop.box
        A([x + w / 2, y + h / 2, max(w, h)], [47.5, 47.5, 48.0], atol=2e-3)
        zoom = matrix[0, 0]
        assert crop.area == pytest.approx(original.area * zoom**2, rel=1e-4)
        assert annotation["source"]["image_id"] == original.image_id
        assert annotation["source"]["file_name"] == Path(original.image_path).name


def test_coco_crop_pixels_are_the_person_where_the_keypoints_say(coco_crops):
    """Each crop matches an independent antialiased resampling of the same region (Pillow's
    resize with a box, on a zero-padded image), and matches it worse when that region is
    moved by one crop pixel: the pixels and the keypoints share one frame."""
    source, out = coco_crops
    data = json.loads((out / "test_coco.json").read_text())
    for image, annotation in zip(data["images"], data["annotations"]):
        matrix = np.array(annotation["source"]["image_to_crop"])
        zoom, tx, ty = matrix[0, 0], matrix[0, 2], matrix[1, 2]
        original = np.asarray(Image.open(source.parent / "images" /
                                         annotation["source"]["file_name"]).convert("RGB"))
        pad = max(original.shape)
        padded = Image.fromarray(np.pad(original, ((pad, pad), (pad, pad), (0, 0))))
        crop = np.asarray(Image.open(out / "images" / image["file_name"]), np.float64)

        def error(dx, dy):
            # Crop pixel edges -0.5 and 95.5 in image pixel-edge coordinates (+0.5), shifted.
            left, top = (-0.5 + dx - tx) / zoom + 0.5 + pad, (-0.5 + dy - ty) / zoom + 0.5 + pad
            side = 96 / zoom
            reference = padded.resize((96, 96), Image.BILINEAR,
                                      box=(left, top, left + side, top + side))
            return np.abs(crop - np.asarray(reference, np.float64)).mean()

        aligned = error(0, 0)
        shifted = min(error(dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)))
        assert aligned < 6.0 and aligned < 0.7 * shifted, (image["file_name"], aligned,
                                                            shifted)


def test_coco_crops_upscale_small_persons_as_jpeg(realdata, tmp_path):
    """At 256 px some persons grow (no antialiasing pass); the default format is JPEG."""
    source = realdata / "coco" / "test_coco.json"
    assert _script("coco_person_crops").main([str(source), str(source.parent / "images"),
                                              "--out", str(tmp_path), "--size", "256",
                                              "--min-keypoints", "10"]) == 0
    data = json.loads((tmp_path / "test_coco.json").read_text())
    kept = [a for a in json.loads(source.read_text())["annotations"]
            if a["num_keypoints"] >= 10]
    assert [a["id"] for a in data["annotations"]] == [a["id"] for a in kept]
    zooms = [a["source"]["image_to_crop"][0][0] for a in data["annotations"]]
    assert min(zooms) < 1.0 < max(zooms)
    for crop in read_coco(tmp_path / "test_coco.json"):
        with Image.open(crop.image_path) as image:
            assert image.format == "JPEG" and image.size == (256, 256)


def test_coco_crops_bad_input_fails_with_one_line(realdata, tmp_path, capsys):
    crops = _script("coco_person_crops")
    source = realdata / "coco" / "test_coco.json"
    _fails_cleanly(capsys, crops.main([str(tmp_path / "none.json"), "--out", str(tmp_path)]),
                   "annotation file not found", "none.json")
    _fails_cleanly(capsys, crops.main([str(source), "--out", str(source.parent)]),
                   "is the annotation file's folder")
    _fails_cleanly(capsys, crops.main([str(source), "--out", str(tmp_path), "--size", "4"]),
                   "--size must be at least 8")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_cleanly(capsys, crops.main([str(source), str(empty), "--out", str(tmp_path)]),
                   "3 image file(s)", "not found in", "000000000785.jpg")
    _fails_cleanly(capsys, crops.main([str(realdata / "mpii" / "test_mpii.json"), "--out",
                                       str(tmp_path)]), "test_mpii.json", "COCO object")
    assert not (tmp_path / "test_coco.json").exists()


# ---------------------------------------------------------------- check.py


def test_check_lspet_folder_is_complete(realdata, capsys):
    assert _script("check").main(["lspet", str(realdata / "lspet")]) == 0
    out = capsys.readouterr().out
    assert "persons 20 in 20 images; skeleton lsp_14" in out
    assert "joints labelled 246/280 (87.9%): visible 246, occluded 0" in out
    assert "head_top            100.0%" in out and "no problems found" in out


def test_check_counts_what_the_lspet_bench_readme_states(realdata, capsys):
    """realdata/lspet_bench/README.md: 6,708 of 56,000 train joints not visible, and 8
    visible train joints just outside the image."""
    bench = realdata / "lspet_bench"
    assert _script("check").main(["lspet", str(bench / "joints_train.mat"), "--images",
                                  str(bench / "images")]) == 0
    out = capsys.readouterr().out
    assert "persons 4000 in 4000 images" in out
    assert f"joints labelled {56000 - 6708}/56000" in out and "outside the image 8" in out


def test_check_reports_missing_lsp_images(realdata, capsys):
    """The LSP sample ships joints.mat without its images."""
    assert _script("check").main(["lsp", str(realdata / "lsp")]) == 1
    out = capsys.readouterr().out
    assert "image folder" in out and "lsp/images is missing" in out
    assert "20 image file(s) named in" in out and "im0001.jpg" in out
    assert "problem(s)" in out


def test_check_coco_layout_with_decoding(realdata, tmp_path, capsys):
    """A folder in COCO's layout, linked (not copied) to the real sample."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_val2017.json").symlink_to(
        realdata / "coco" / "test_coco.json")
    (tmp_path / "val2017").symlink_to(realdata / "coco" / "images")
    check = _script("check")
    assert check.main(["coco", str(tmp_path), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "persons 7 in 3 images; skeleton coco_17" in out
    assert "occluded 7" in out and "areas (COCO AP): yes" in out
    assert "decoded 3/3 images" in out
    (tmp_path / "val2017").unlink()
    assert check.main(["coco", str(tmp_path)]) == 1
    assert "val2017 is missing" in capsys.readouterr().out


def test_check_mpii_release_has_head_boxes(mpii_release, capsys):
    mat, _, images = mpii_release
    assert _script("check").main(["mpii", str(mat), "--images", str(images)]) == 0
    out = capsys.readouterr().out
    assert "persons 4 in 3 images; skeleton mpii_16" in out
    assert "head boxes (PCKh): yes" in out and "occluded 2" in out


def test_check_bad_input(realdata, tmp_path, capsys):
    check = _script("check")
    _fails_cleanly(capsys, check.main(["coco", str(tmp_path / "nothing")]),
                   "no such folder or file", "nothing")
    _fails_cleanly(capsys, check.main(["flic", str(tmp_path)]),
                   "no flic annotation file found", "examples.mat")
    assert check.main(["lsp", str(realdata / "coco" / "test_coco.json")]) == 1
    assert "is not a MATLAB .mat file" in capsys.readouterr().out
