"""Skeletons: shipped layouts are consistent, user layouts are validated."""

from __future__ import annotations

import pytest

from kpose.skeletons import COCO_17, FLIC, LSP_14, MPII_16, SKELETONS, Skeleton, get_skeleton

SHIPPED = [COCO_17, MPII_16, LSP_14, FLIC]


def _user_skeleton(**overrides) -> Skeleton:
    fields = dict(name="stick", joint_names=("head", "left_hand", "right_hand", "hip"),
                  flip_pairs=((1, 2),), limbs=(("left_arm", 0, 1),), torso=(0, 3),
                  head=(0, 3), oks_sigmas=(0.05, 0.05, 0.05, 0.05))
    fields.update(overrides)
    return Skeleton(**fields)


@pytest.mark.parametrize("skeleton", SHIPPED, ids=lambda s: s.name)
def test_flip_pairs_join_a_left_joint_to_its_right_twin(skeleton):
    for left, right in skeleton.flip_pairs:
        left_name, right_name = skeleton.joint_names[left], skeleton.joint_names[right]
        assert left_name.startswith("left_") and right_name.startswith("right_")
        assert left_name.removeprefix("left_") == right_name.removeprefix("right_")


@pytest.mark.parametrize("skeleton", SHIPPED, ids=lambda s: s.name)
def test_flip_permutation_is_its_own_inverse(skeleton):
    perm = skeleton.flip_permutation
    assert [perm[perm[k]] for k in range(skeleton.num_joints)] == list(range(skeleton.num_joints))


@pytest.mark.parametrize("skeleton", SHIPPED, ids=lambda s: s.name)
def test_torso_is_left_shoulder_to_right_hip(skeleton):
    a, b = skeleton.torso
    assert (skeleton.joint_names[a], skeleton.joint_names[b]) == ("left_shoulder", "right_hip")


def test_coco_uses_the_official_oks_sigmas():
    official = [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                .89, .89]
    assert COCO_17.oks_sigmas == pytest.approx([s / 10 for s in official])


def test_joint_counts_and_lookup():
    assert [s.num_joints for s in SHIPPED] == [17, 16, 14, 11]
    assert MPII_16.index("head_top") == 9 and LSP_14.index("head_top") == 13
    assert LSP_14.side(LSP_14.index("left_wrist")) == "left"
    assert LSP_14.side(LSP_14.index("neck")) == "centre"
    assert get_skeleton("lsp_14") is LSP_14 and set(SKELETONS) == {s.name for s in SHIPPED}
    with pytest.raises(KeyError, match="no joint 'tail'"):
        COCO_17.index("tail")
    with pytest.raises(ValueError, match="unknown skeleton 'horse'"):
        get_skeleton("horse")


def test_user_skeleton_is_accepted_and_flips():
    skeleton = _user_skeleton()
    assert skeleton.flip_permutation == (0, 2, 1, 3)
    assert skeleton.bones == ((0, 1),)


def test_flip_pair_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"flip pair \(1, 7\).*out of range 0..3"):
        _user_skeleton(flip_pairs=((1, 7),))


def test_flip_pair_reusing_a_joint_is_refused():
    with pytest.raises(ValueError, match="reuses a joint"):
        _user_skeleton(flip_pairs=((1, 2), (2, 3)))


def test_joint_paired_with_itself_is_refused():
    with pytest.raises(ValueError, match="pairs a joint with itself"):
        _user_skeleton(flip_pairs=((1, 1),))


def test_repeated_joint_names_are_refused():
    with pytest.raises(ValueError, match=r"unique, repeated: \['hip'\]"):
        _user_skeleton(joint_names=("hip", "left_hand", "right_hand", "hip"))


def test_sigma_count_must_match_joints():
    with pytest.raises(ValueError, match="oks_sigmas has 2 values, expected one per joint"):
        _user_skeleton(oks_sigmas=(0.1, 0.1))


def test_torso_index_out_of_range_is_refused():
    with pytest.raises(ValueError, match="torso index 9"):
        _user_skeleton(torso=(0, 9))
