"""Readers: every real sample file converts to the kpose convention, with numbers read by
hand from the files; synthetic MPII/FLIC .mat files cover the formats we have no sample of;
bad inputs fail with messages that name the file, the field and what was expected."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import scipy.io
from PIL import Image

from kpose.data.coco import read_coco
from kpose.data.flic import FLIC_PARTS, read_flic
from kpose.data.images import check_images_exist, image_size, image_sizes
from kpose.data.lsp import lsp_image_names, read_lsp, read_lsp_keypoints
from kpose.data.mpii import read_mpii
from kpose.data.records import box_from_keypoints
from kpose.skeletons import COCO_17, Skeleton
from matlab_structs import struct_array  # tests/ helper

A = np.testing.assert_allclose


def _skeleton_14(name: str, joint_names: tuple[str, ...]) -> Skeleton:
    """A minimal 14-joint layout for the COCO-format files with 14 keypoints."""
    return Skeleton(name=name, joint_names=joint_names, flip_pairs=(), limbs=(),
                    torso=(0, 1), head=(12, 13), oks_sigmas=(0.05,) * 14)


CROWDPOSE_14 = _skeleton_14("crowdpose_14", (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "head", "neck"))
AIC_14 = _skeleton_14("aic_14", (
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "head_top", "neck"))


# ---------------------------------------------------------------- COCO and COCO-format files


def test_coco_keeps_labelled_non_crowd_persons_with_their_values(realdata):
    records = read_coco(realdata / "coco" / "test_coco.json")
    # 9 annotations, 2 with num_keypoints == 0 (ids 1202706 and 508900), none crowd.
    assert [r.annotation_id for r in records] == [442619, 198196, 230195, 460541, 488308,
                                                  1717641, 1724673]
    first = records[0]
    assert first.image_path.endswith("coco/images/000000000785.jpg")
    assert first.skeleton == "coco_17" and first.image_id == 785
    assert first.image_size == (640, 425) == image_size(first.image_path)
    assert first.box == (280.79, 44.73, 218.7, 346.68)
    assert first.area == pytest.approx(27789.11055)
    # Nose, left eye, right eye as in the file: COCO is already 0-based.
    A(first.keypoints[:3], [[367, 81, 2], [374, 73, 2], [360, 75, 2]])
    assert first.keypoints.dtype == np.float32 and first.keypoints.shape == (17, 3)
    # Annotation 460541 has right_eye unlabelled: (0, 0, 0).
    A(records[3].keypoints[2], [0, 0, 0])
    for r in records:
        assert r.image_size == image_size(r.image_path)
        assert np.all(r.keypoints[r.keypoints[:, 2] == 0, :2] == 0)


def test_ochuman_float_visibility_and_fractional_coordinates(realdata):
    records = read_coco(realdata / "ochuman" / "test_ochuman.json")
    assert [(r.image_id, r.annotation_id) for r in records] == [(1, 1), (2, 2), (2, 3)]
    A(records[0].keypoints[0], [371.5701271305881, 188.86769422623237, 2], rtol=1e-6)
    A(records[0].keypoints[7], [577, 287, 1])  # left elbow, occluded
    A(records[1].keypoints[3], [0, 0, 0])
    assert records[0].image_size == (900, 864)
    assert set(np.unique(np.concatenate([r.keypoints[:, 2] for r in records]))) <= {0, 1, 2}


def test_crowdpose_needs_a_14_joint_skeleton(realdata):
    path = realdata / "crowdpose" / "test_crowdpose.json"
    with pytest.raises(ValueError, match=r"14 keypoints.*'coco_17' has 17"):
        read_coco(path)
    records = read_coco(path, skeleton=CROWDPOSE_14)
    assert [r.annotation_id for r in records] == [123803, 147481]  # 131039 has none
    assert records[0].skeleton == "crowdpose_14"
    A(records[0].keypoints[12], [256, 27, 1])  # head, occluded
    # CrowdPose has no area: the box's w * h stands in.
    assert records[0].area == pytest.approx(273.15 * 352.42)


def test_aic_conversion_without_iscrowd_or_area(realdata):
    records = read_coco(realdata / "aic" / "test_aic.json", skeleton=AIC_14)
    assert len(records) == 6
    A(records[0].keypoints[12], [395, 74, 2])
    assert records[0].area == 213 * 544
    assert records[0].image_size == (900, 600)


def test_posetrack_keypoint_names_that_differ_from_coco_are_warned(realdata):
    path = realdata / "posetrack18" / "annotations" / "val" / "003418_mpii_test.json"
    with pytest.warns(UserWarning, match="head_bottom"):
        records = read_coco(path, realdata / "posetrack18")
    assert len(records) == 1 and records[0].image_size == (1920, 1080)


def test_coco_missing_images_are_listed_by_name(realdata, tmp_path):
    shutil.copy(realdata / "coco" / "test_coco.json", tmp_path / "coco.json")
    with pytest.raises(FileNotFoundError) as err:
        read_coco(tmp_path / "coco.json")
    message = str(err.value)
    assert "3 image file(s)" in message and "000000000785.jpg" in message
    assert "skip_missing=True" in message
    with pytest.warns(UserWarning, match="3 image file"):
        assert read_coco(tmp_path / "coco.json", skip_missing=True) == []


def test_coco_rejects_other_formats(realdata, tmp_path):
    lsp_mat = realdata / "lsp" / "joints.mat"
    with pytest.raises(ValueError, match="joints.mat is not a JSON file"):
        read_coco(lsp_mat)
    with pytest.raises(ValueError, match="got a JSON list"):
        read_coco(realdata / "mpii" / "test_mpii.json")
    no_annotations = tmp_path / "images_only.json"
    no_annotations.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(ValueError, match=r"images_only.json: field 'annotations' is missing"):
        read_coco(no_annotations)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.joint_names)}],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}],
        "annotations": [{"id": 5, "image_id": 1, "bbox": [0, 0, 1, 1],
                         "keypoints": [1, 2, 2] * 16}]}))
    with pytest.raises(ValueError, match=r"\(id 5\).*shape \(48,\), expected 51"):
        read_coco(short)
    fractional_v = tmp_path / "fractional.json"
    fractional_v.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}],
        "annotations": [{"id": 7, "image_id": 1, "bbox": [0, 0, 1, 1],
                         "keypoints": [1, 2, 0.29] + [0, 0, 0] * 16}]}))
    with pytest.raises(ValueError, match=r"v must be 0, 1 or 2, got \[0.29\]"):
        read_coco(fractional_v)


# ---------------------------------------------------------------- MPII


def test_mpii_json_is_shifted_to_0_based_with_missing_ankles(realdata):
    records = read_mpii(realdata / "mpii" / "test_mpii.json")
    assert [r.file_name for r in records] == ["005808361.jpg", "052475643.jpg",
                                              "004645041.jpg"]
    r = records[2]
    assert r.skeleton == "mpii_16" and r.image_id == "004645041"
    assert r.image_size == (1280, 720)  # from the JPEG header
    # joints_vis 0 for r_ankle (0) and l_ankle (5): v = 0 and x = y = 0.
    A(r.keypoints[[0, 5]], [[0, 0, 0], [0, 0, 0]])
    A(r.keypoints[1], [803, 658, 2])                    # r_knee (804, 659)
    A(r.keypoints[9], [815.0921, 202.0674, 2], rtol=1e-6)  # head_top (816.0921, 203.0674)
    assert set(r.keypoints[:, 2]) == {0.0, 2.0}  # the JSON carries no occlusion flag
    # Box: side 200 * 3.248877, centre (809, 403) - 1 shifted down by 15 * 3.248877.
    side = 649.7754
    A(r.box, [808 - side / 2, 402 + 48.733155 - side / 2, side, side], rtol=1e-7)
    assert r.extra["center"] == (808.0, 402.0) and r.head_size is None
    assert records[1].image_size == (854, 480)


def _points(*points) -> dict:
    """``annopoints`` with ``point(p)`` = (id, x, y, is_visible)."""
    rows = [dict(id=p[0], x=p[1], y=p[2], is_visible=p[3]) for p in points]
    return {"point": struct_array(rows, ("x", "y", "id", "is_visible"))}


def _write_mpii_release(folder) -> None:
    """A 3-image RELEASE with the real file's nesting and hand-set 1-based numbers."""
    (folder / "images").mkdir()
    for name, size in (("000000001.jpg", (640, 480)), ("000000002.jpg", (320, 240)),
                       ("000000003.jpg", (200, 100))):
        Image.new("RGB", size).save(folder / "images" / name)
    rect_fields = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
    image_1 = struct_array([
        dict(x1=101.0, y1=51.0, x2=131.0, y2=91.0, scale=2.0, objpos={"x": 301.0, "y": 201.0},
             # is_visible as number, as string and missing: all three occur in the release.
             annopoints=_points((0, 301.0, 401.0, 1.0), (9, 311.0, 61.0, "0"),
                                (13, 321.0, 121.0, np.zeros((0, 0))))),
        dict(scale=1.5, objpos={"x": 501.0, "y": 201.0}),  # person without joints
    ], rect_fields)
    image_2 = struct_array([  # one rect, one point each: squeeze_me unwraps both
        dict(x1=11.0, y1=11.0, x2=21.0, y2=21.0, scale=np.zeros((0, 0)),
             objpos=np.zeros((0, 0)), annopoints=_points((7, 101.0, 51.0, 1.0))),
    ], rect_fields)
    image_3 = struct_array([dict(scale=1.0, objpos={"x": 51.0, "y": 51.0})], rect_fields)
    annolist = struct_array([
        dict(image={"name": "000000001.jpg"}, annorect=image_1),
        dict(image={"name": "000000002.jpg"}, annorect=image_2),
        dict(image={"name": "000000003.jpg"}, annorect=image_3),
    ], ("image", "annorect", "frame_sec", "vididx"))
    single_person = np.empty((3, 1), dtype=object)
    single_person[0, 0] = np.array([[2.0]])
    single_person[1, 0] = np.array([[1.0]])
    single_person[2, 0] = np.zeros((0, 0))
    release = {"annolist": annolist, "img_train": np.array([[1.0, 1.0, 0.0]]),
               "single_person": single_person, "version": "12"}
    scipy.io.savemat(folder / "mpii_human_pose_v1_u12_1.mat", {"RELEASE": release})


def test_mpii_mat_release_converts_points_visibility_head_size_and_box(tmp_path):
    _write_mpii_release(tmp_path)
    records = read_mpii(tmp_path / "mpii_human_pose_v1_u12_1.mat")
    assert len(records) == 2  # rects without points and the test image give no record
    first, second = records
    assert first.image_id == "000000001" and first.image_size == (640, 480)
    expected = np.zeros((16, 3), np.float32)
    expected[0] = (300, 400, 2)   # is_visible 1 -> visible
    expected[9] = (310, 60, 1)    # is_visible '0' -> occluded
    expected[13] = (320, 120, 2)  # is_visible missing -> labelled, taken as visible
    A(first.keypoints, expected)
    assert first.head_size == pytest.approx(0.6 * 50.0)  # head box 30 x 40 px
    assert first.extra["head_box"] == (100.0, 50.0, 130.0, 90.0)
    # Square of 200 * 2 px centred at (300, 200 + 15 * 2).
    assert first.box == (100.0, 30.0, 400.0, 400.0)
    assert first.extra["single_person"] is False and first.extra["annorect_index"] == 0
    # No objpos/scale: the box falls back to the joints (one joint: a small square on it).
    A(second.keypoints[7], [100, 50, 2])
    assert second.extra["single_person"] is True and second.image_size == (320, 240)
    x, y, w, h = second.box
    assert (x + w / 2, y + h / 2) == pytest.approx((100, 50)) and w > 0


def test_mpii_mat_split_and_single_person_filters(tmp_path):
    _write_mpii_release(tmp_path)
    mat = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    assert len(read_mpii(mat, split="train")) == 2
    assert read_mpii(mat, split="test") == []
    only_single = read_mpii(mat, single_person_only=True)
    assert [r.image_id for r in only_single] == ["000000002"]
    with pytest.raises(ValueError, match="split must be one of"):
        read_mpii(mat, split="val")


def test_mpii_rejects_other_formats(realdata, tmp_path):
    with pytest.raises(ValueError, match="expected a JSON list of per-person objects"):
        read_mpii(realdata / "coco" / "test_coco.json")
    with pytest.raises(ValueError, match="variable 'RELEASE' not found.*'joints'"):
        read_mpii(realdata / "lsp" / "joints.mat")
    with pytest.raises(ValueError, match="ending in .json .* or .mat"):
        read_mpii(realdata / "lsp" / "README.txt")
    with pytest.raises(ValueError, match="single_person_only apply to the .mat"):
        read_mpii(realdata / "mpii" / "test_mpii.json", single_person_only=True)
    bad = tmp_path / "bad.json"
    entry = {"image": "a.jpg", "center": [1, 1], "scale": 1.0, "joints": [[1, 1]] * 14,
             "joints_vis": [1] * 16}
    bad.write_text(json.dumps([entry]))
    with pytest.raises(ValueError, match=r"entry 0: field 'joints' has shape \(14, 2\), "
                                         r"expected \(16, 2\)"):
        read_mpii(bad)


# ---------------------------------------------------------------- LSP / LSPET


def test_lspet_bench_train_split(realdata):
    records = read_lsp(realdata / "lspet_bench" / "joints_train.mat", variant="lspet")
    assert len(records) == 4000
    first, last = records[0], records[-1]
    assert first.file_name == "im00001.jpg" and first.image_id == "im00001"
    assert first.skeleton == "lsp_14" and first.image_size == (157, 105)
    A(first.keypoints[13], [115.56859752, 52.42206246, 2], rtol=1e-6)  # head top, flag 1
    A(first.keypoints[0], [0, 0, 0])  # flag 0 at raw (0, -26.1): unusable
    assert last.file_name == "im04000.jpg" and last.image_size == (149, 224)
    A(last.keypoints[13], [67.8387242026, 130.168532587, 2], rtol=1e-6)
    v = np.stack([r.keypoints[:, 2] for r in records])
    assert set(np.unique(v)) == {0.0, 2.0} and int((v == 0).sum()) == 6708
    assert all(r.image_size == s for r, s in
               zip(records[:50], image_sizes([r.image_path for r in records[:50]])))


def test_lspet_bench_val_split_starts_at_image_4001(realdata):
    records = read_lsp(realdata / "lspet_bench" / "joints_val.mat", variant="lspet",
                       first_index=4001)
    assert len(records) == 500
    assert records[0].image_path.endswith("im04001.jpg") and records[0].image_size == (224, 168)
    A(records[0].keypoints[13], [106.44955356, 124.86065978, 2], rtol=1e-6)
    A(records[17].keypoints[0], [0, 0, 0])  # raw (-37.11, 0.21, flag 0)
    assert records[-1].file_name == "im04500.jpg"
    A(records[-1].keypoints[0], [61.1267867545, 17.683392695, 2], rtol=1e-6)
    assert sum(int((r.keypoints[:, 2] == 0).sum()) for r in records) == 843


def test_lspet_original_sample(realdata):
    records = read_lsp(realdata / "lspet" / "joints.mat", variant="lspet")
    assert len(records) == 20
    third = records[2]
    assert third.file_name == "im00003.jpg" and third.image_size == (320, 427)
    A(third.keypoints[0], [148.3138939082, 194.5057492154, 2], rtol=1e-6)
    A(third.keypoints[6:9], np.zeros((3, 3)))  # right arm flag 0 at raw (-53.27, 0)
    assert sum(int((r.keypoints[:, 2] == 0).sum()) for r in records) == 34


def test_lspet_box_covers_joints_and_is_clipped_to_the_image(realdata):
    records = read_lsp(realdata / "lspet_bench" / "joints_train.mat", variant="lspet")
    # im00024's visible head top lies just above the image (y = -1.84): the box stops at
    # the image edge, -0.5 in pixel-centre coordinates.
    r = records[23]
    assert r.keypoints[13, 1] == pytest.approx(-1.84313396, abs=1e-6)
    assert r.box[1] == -0.5
    for r in records[:200]:
        x, y, w, h = r.box
        pts = r.keypoints[r.keypoints[:, 2] > 0, :2]
        inside = (pts[:, 0] >= -0.5) & (pts[:, 1] >= -0.5)
        assert np.all(pts[inside, 0] >= x - 1e-4) and np.all(pts[inside, 0] <= x + w + 1e-4)
        assert x >= -0.5 and x + w <= r.image_size[0] - 0.5 + 1e-9


def test_lsp_flag_0_is_visible_and_flag_1_occluded_with_coordinates(realdata):
    keypoints = read_lsp_keypoints(realdata / "lsp" / "joints.mat", variant="lsp")
    assert keypoints.shape == (20, 14, 3) and keypoints.dtype == np.float32
    A(keypoints[0, 0], [472.95283019, 551.63152053, 2], rtol=1e-6)     # flag 0
    A(keypoints[13, 0], [568.269122807, 435.530877193, 1], rtol=1e-6)  # flag 1: occluded
    A(keypoints[13, 3], [584.7968421053, 441.2796491228, 2], rtol=1e-6)
    A(keypoints[19, 13], [437.3423973363, 230.0704772475, 2], rtol=1e-6)
    assert int((keypoints[..., 2] == 1).sum()) == 24 and not np.any(keypoints[..., 2] == 0)


def test_lsp_without_images_names_the_missing_files(realdata):
    with pytest.raises(FileNotFoundError) as err:
        read_lsp(realdata / "lsp" / "joints.mat")
    message = str(err.value)
    assert "20 image file(s)" in message and "im0001.jpg" in message
    assert "im0005.jpg and 15 more" in message
    with pytest.warns(UserWarning, match="20 image file"):
        assert read_lsp(realdata / "lsp" / "joints.mat", skip_missing=True) == []


def test_lspet_partly_missing_images_are_dropped_on_request(realdata, tmp_path):
    (tmp_path / "images").mkdir()
    shutil.copy(realdata / "lspet" / "joints.mat", tmp_path / "joints.mat")
    for n in (1, 3):
        shutil.copy(realdata / "lspet" / "images" / f"im{n:05d}.jpg", tmp_path / "images")
    with pytest.raises(FileNotFoundError, match="18 image file.*im00002.jpg"):
        read_lsp(tmp_path / "joints.mat", variant="lspet")
    with pytest.warns(UserWarning, match="18 image file"):
        records = read_lsp(tmp_path / "joints.mat", variant="lspet", skip_missing=True)
    assert [r.file_name for r in records] == ["im00001.jpg", "im00003.jpg"]


def test_lsp_wrong_variant_names_the_expected_layout(realdata):
    with pytest.raises(ValueError, match=r"\(14, 3, 20\).*expects \(3, 14, N\).*"
                                         r"variant='lspet'"):
        read_lsp_keypoints(realdata / "lspet" / "joints.mat", variant="lsp")
    with pytest.raises(ValueError, match=r"\(3, 14, 20\).*expects \(14, 3, N\).*"
                                         r"variant='lsp'"):
        read_lsp(realdata / "lsp" / "joints.mat", variant="lspet")
    with pytest.raises(ValueError, match="variant must be one of"):
        read_lsp_keypoints(realdata / "lsp" / "joints.mat", variant="LSP")


def test_lsp_rejects_other_files(realdata, tmp_path):
    with pytest.raises(ValueError, match="test_mpii.json is not a MATLAB .mat file"):
        read_lsp(realdata / "mpii" / "test_mpii.json")
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"points": np.zeros((3, 14, 2))})
    with pytest.raises(ValueError, match=r"variable 'joints' not found \(variables: "
                                         r"\['points'\]\)"):
        read_lsp(other)


def test_lsp_image_names_follow_the_variant():
    assert lsp_image_names(2, "lsp") == ["im0001.jpg", "im0002.jpg"]
    assert lsp_image_names(1, "lspet", first_index=4001) == ["im04001.jpg"]


# ---------------------------------------------------------------- FLIC


def _write_flic(folder) -> None:
    """Three frames; frame 1 has every one of the 29 parts at x = column, y = 100 + column
    (0-based values, stored 1-based), frame 2 nothing, frame 3 two joints."""
    (folder / "images").mkdir()
    Image.new("RGB", (72, 48)).save(folder / "images" / "movie-00000001.jpg")
    Image.new("RGB", (60, 40)).save(folder / "images" / "movie-00000003.jpg")
    full = np.stack([np.arange(29.0), 100.0 + np.arange(29.0)]) + 1.0
    empty = np.full((2, 29), np.nan)
    sparse = empty.copy()
    sparse[:, 3] = (11.0, 21.0)   # rsho
    sparse[:, 16] = (31.0, 11.0)  # nose
    fields = ("poselet_hit_idx", "moviename", "coords", "filepath", "imgdims", "currframe",
              "torsobox", "istrain", "istest", "isbad", "isunchecked")
    examples = struct_array([
        dict(moviename="movie", coords=full, filepath="movie-00000001.jpg",
             imgdims=np.array([[480.0, 720.0, 3.0]]), currframe=1.0,
             torsobox=np.array([[11.0, 21.0, 31.0, 41.0]]), istrain=1.0, istest=0.0,
             isbad=0.0, isunchecked=0.0),
        dict(moviename="movie", coords=empty, filepath="movie-00000002.jpg",
             imgdims=np.array([[40.0, 60.0, 3.0]]), currframe=2.0, istrain=0.0, istest=1.0),
        dict(moviename="movie", coords=sparse, filepath="movie-00000003.jpg",
             currframe=3.0, istrain=0.0, istest=1.0, isbad=1.0),  # no imgdims: header
    ], fields)
    scipy.io.savemat(folder / "examples.mat", {"examples": examples})


def test_flic_maps_parts_to_the_eleven_joints(tmp_path):
    _write_flic(tmp_path)
    records = read_flic(tmp_path / "examples.mat")
    assert [r.image_id for r in records] == ["movie-00000001", "movie-00000003"]
    first = records[0]
    assert first.skeleton == "flic" and first.keypoints.shape == (11, 3)
    # Skeleton order: lsho lelb lwri rsho relb rwri lhip rhip leye reye nose, i.e. FLIC
    # columns 0-6, 9 (rhip), 12, 13 (eyes) and 16 (nose).
    columns = [0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16]
    A(first.keypoints, np.stack([columns, np.add(columns, 100), [2] * 11], axis=1))
    assert first.image_size == (720, 480)  # from imgdims [h, w, 3], not the 72 x 48 file
    assert first.extra == {"torsobox": (10.0, 20.0, 30.0, 40.0), "moviename": "movie",
                           "currframe": 1, "isbad": False, "isunchecked": False}
    second = records[1]
    expected = np.zeros((11, 3), np.float32)
    expected[3] = (10, 20, 2)
    expected[10] = (30, 10, 2)
    A(second.keypoints, expected)
    assert second.image_size == (60, 40) and second.extra["isbad"] is True
    x, y, w, h = second.box
    assert x <= 10 and x + w >= 30 and y <= 10 and y + h >= 20
    assert FLIC_PARTS[9] == "rhip" and len(FLIC_PARTS) == 29


def test_flic_splits(tmp_path):
    _write_flic(tmp_path)
    mat = tmp_path / "examples.mat"
    assert [r.image_id for r in read_flic(mat, split="train")] == ["movie-00000001"]
    assert [r.image_id for r in read_flic(mat, split="test")] == ["movie-00000003"]
    with pytest.raises(ValueError, match="split must be one of"):
        read_flic(mat, split="val")


def test_flic_rejects_other_files(realdata, tmp_path):
    with pytest.raises(ValueError, match=r"variable 'examples' not found.*'joints'"):
        read_flic(realdata / "lspet" / "joints.mat")
    bad = tmp_path / "examples.mat"
    scipy.io.savemat(bad, {"examples": struct_array(
        [dict(coords=np.zeros((2, 14)), filepath="a.jpg")], ("coords", "filepath"))})
    with pytest.raises(ValueError, match=r"examples\(1\): field 'coords' has shape "
                                         r"\(2, 14\), expected \(2, 29\)"):
        read_flic(bad)


# ---------------------------------------------------------------- shared helpers


def test_image_size_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jpg"):
        image_size(tmp_path / "nothing.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        image_size(text)


def test_check_images_exist_reports_each_missing_file_once(tmp_path):
    present = tmp_path / "a.jpg"
    Image.new("RGB", (4, 3)).save(present)
    paths = [present, tmp_path / "b.jpg", tmp_path / "b.jpg"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_images_exist(paths, skip_missing=True) == [True, False, False]
    assert len(caught) == 1 and "1 image file(s) not found" in str(caught[0].message)


def test_box_from_keypoints_single_joint_is_centred_and_unlabelled_are_ignored():
    kp = np.array([[50, 60, 2], [0, 0, 0], [900, 900, 0]], np.float32)
    x, y, w, h = box_from_keypoints(kp)
    assert (x + w / 2, y + h / 2) == pytest.approx((50, 60)) and w > 0 and h > 0
    with pytest.raises(ValueError, match="outside the image"):
        box_from_keypoints(np.array([[-10, -10, 2], [-5, -5, 2]], np.float32), (20, 20))
