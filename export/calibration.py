"""Images for int8 calibration and for verifying exports, made the way training makes them.

Both come from one data spec (``--calibration-data``; default: the run's validation data,
else synthetic people) through :func:`kpose.data.make_dataset` without augmentation: the
same person crop, resize and RGB 0..255 float32 the model was trained on. The first
``samples`` people calibrate; the next ``verify`` (people not used for calibration) verify,
with their keypoints in input pixels for PCK.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.errors import ExportError

__all__ = ["ExportImages", "load_export_images", "default_spec", "SYNTHETIC_DEFAULT"]

SYNTHETIC_DEFAULT = "synthetic:300:7"


@dataclass
class ExportImages:
    """Calibration and verification crops.

    Attributes:
        spec: the data spec they came from.
        calibration: ``(N, H, W, 3)`` float32 RGB 0..255.
        verification: ``(M, H, W, 3)`` float32 RGB 0..255, none of them in ``calibration``.
        truth: ``(M, K, 3)`` their keypoints ``(x, y, v)`` in input pixels, or ``None`` when
            the data follows another skeleton (then no PCK is computed).
    """

    spec: str
    calibration: np.ndarray
    verification: np.ndarray
    truth: np.ndarray | None

    def representative(self):
        """The int8 converter's representative dataset: ``(1, H, W, 3)`` float32 images.

        The first image gets one pixel of 0 and one of 255 (top-left corner), so the
        calibrated input range is exactly 0..255 and a uint8 input takes raw pixels
        (scale 1, zero point 0); one pixel changes no other range measurably.
        """
        for index, image in enumerate(self.calibration):
            image = image.copy()
            if index == 0:
                image[0, 0, :] = 0.0
                image[0, 1, :] = 255.0
            yield image[None]


def default_spec(run_config: dict | None) -> str:
    """``--calibration-data`` when none is given: the run's validation data, else synthetic."""
    if run_config and run_config.get("val_data"):
        return str(run_config["val_data"])
    return SYNTHETIC_DEFAULT


def load_export_images(data, skeleton, input_size, *, samples: int = 200, verify: int = 50,
                       for_int8: bool = False) -> ExportImages:
    """Read a data spec (or :class:`~kpose.data.specs.LoadedData`) into export images.

    Args:
        data: a spec string like ``"coco:ann.json:images"`` or ``"synthetic:300"``, or
            ``LoadedData``.
        skeleton: the model's :class:`~kpose.skeletons.Skeleton`.
        input_size: ``(H, W)``.
        samples: calibration images (the first ones).
        verify: verification images (the next ones); with fewer people than
            ``samples + verify``, a quarter (at least 1) are kept for verification.
        for_int8: the images calibrate an int8 model, so they must follow the model's
            skeleton and there must be at least 2 people.

    Raises:
        ExportError: the spec does not load, or (``for_int8``) is not usable for
            calibration.
    """
    from kpose.data import make_dataset
    from kpose.data.specs import LoadedData, load_data_spec

    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ExportError(f"--calibration-samples must be a positive integer, got {samples!r}")
    what = "calibration data" if for_int8 else "verification data"
    try:
        loaded = data if isinstance(data, LoadedData) else load_data_spec(data)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise ExportError(f"{what} {data!r} is not usable: "
                          f"{str(error).splitlines()[0]}") from None
    records = list(loaded.records)
    same_skeleton = loaded.skeleton.name == skeleton.name and \
        loaded.skeleton.num_joints == skeleton.num_joints
    if for_int8 and not same_skeleton:
        raise ExportError(f"calibration data {loaded.spec!r} follows skeleton "
                          f"{loaded.skeleton.name!r}, but the model predicts "
                          f"{skeleton.name!r}: pass --calibration-data with the model's own "
                          "kind of data")
    if len(records) < 2:
        raise ExportError(f"{what} {loaded.spec!r} holds {len(records)} person; at least 2 "
                          "are needed (calibration and verification must not share images)")
    wanted = int(samples) + int(verify)
    held_out = int(verify) if len(records) >= wanted else max(1, len(records) // 4)
    calibrate = records[:min(int(samples), len(records) - held_out)]
    check = records[len(calibrate):len(calibrate) + held_out]
    try:
        calibration, _ = _crops(make_dataset, calibrate, loaded.skeleton, input_size)
        verification, truth = _crops(make_dataset, check, loaded.skeleton, input_size)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise ExportError(f"{what} {loaded.spec!r} could not be read: "
                          f"{str(error).splitlines()[0]}") from None
    except Exception as error:  # noqa: BLE001 - tf.data wraps reader errors in its own
        raise ExportError(f"{what} {loaded.spec!r} could not be read: "
                          f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    return ExportImages(loaded.spec, calibration, verification,
                        truth if same_skeleton else None)


def _crops(make_dataset, records, skeleton, input_size):
    """All person crops of ``records``: images ``(N, H, W, 3)`` and keypoints in input px."""
    from kpose.data.pipeline import naming_unreadable_images  # with make_dataset: TF
    data = make_dataset(records, skeleton, input_size=tuple(input_size), target="none",
                        batch_size=32, training=False)
    images, keypoints = [], []
    with naming_unreadable_images(records):  # a decode error names the file
        for batch_images, batch_keypoints in data:
            images.append(batch_images.numpy())
            keypoints.append(batch_keypoints.numpy())
    return (np.concatenate(images).astype(np.float32),
            np.concatenate(keypoints).astype(np.float32))
