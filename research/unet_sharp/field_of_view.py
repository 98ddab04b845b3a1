"""Does a model give the same liver on a full scan, a crop of it and a coarser copy?

    python research/unet_sharp/field_of_view.py [--phantoms N] [--pixel-spacing MM ...]
        [--weights FILE] [--min-lesion-mm3 MM3] [--lesion-growth-mm MM] [--min-lesion-prob P]
        [--trace]

For the TotalSegmentator example of ../shared/data (liver = label 5) and ``N`` held-out
phantoms (``liverseg sample-data --seed 2`` cases, 512x512x80), three versions of each scan
are segmented by the default weights through :func:`keras_liverseg.predict_volume` with its
default post-processing: the scan itself, the scan cut to the liver's box plus 10 mm (a
liver-centred scan), and a copy at twice the in-plane pixel spacing (2x2 blocks averaged).
Each is scored against its own label cut or coarsened the same way: liver Dice, and the
predicted lesions over 1 ml in a scan whose label has no tumor. ``--pixel-spacing`` runs the
same weights reading slices at that physical spacing (``none``: resized to the input, the
behaviour of models without a spacing). ``--trace`` adds, for the real example, what
TotalSegmentator's 117-class label map (v2 ``total`` task: 5 liver, 64 portal and splenic
vein, 117 costal cartilages, 0 none) holds under each predicted lesion, counted on the
scan's own voxels (on the coarse copy, the 2x2 voxels under each of its voxels).
``--weights`` scores candidate weights instead, with the post-processing options given (as
``liverseg predict`` takes them; other weights than the bundled ones get none by default).
Prints one JSON line per scan and setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))
from geometry import coarsen_in_plane, crop_to_mask_box, in_plane_axes  # noqa: E402  (the tests' helpers)

MARGIN_MM = 10.0


def versions(volume, labels, affine):
    """``{name: (volume, labels, affine)}``: the full scan, its liver crop, a 2x coarser copy."""
    return {
        "full": (volume, labels, affine),
        "crop": crop_to_mask_box(volume, labels, affine, labels >= 1, MARGIN_MM),
        "coarse": coarsen_in_plane(volume, labels, affine, 2),
    }


def reference_under_lesions(predicted: np.ndarray, reference: np.ndarray,
                            factor: int, plane: list[int]) -> list[dict[int, int]]:
    """For each connected lesion of ``predicted`` (labels, 2 = tumor), the voxel count of
    each label of ``reference`` under it; ``reference`` is ``factor`` times finer along the
    axes ``plane`` (a coarse copy's original) or on the same grid (``factor`` 1)."""
    from scipy import ndimage

    components, count = ndimage.label(predicted == 2)
    for axis in plane if factor > 1 else []:
        components = np.repeat(components, factor, axis=axis)
    reference = reference[tuple(slice(0, size) for size in components.shape)]
    found = []
    for i in range(1, count + 1):
        values, counts = np.unique(reference[components == i], return_counts=True)
        found.append({int(v): int(c) for v, c in zip(values, counts, strict=True)})
    return found


def score(model, volume, labels, affine, reference=None) -> dict:
    """Liver Dice and false lesions (> 1 ml, only where the label has no tumor);
    ``reference`` = ``(label map, factor, plane)`` adds :func:`reference_under_lesions`."""
    from keras_liverseg import predict_volume
    from keras_liverseg.metrics import dice

    seg = predict_volume(model, volume.astype(np.float32), affine)
    lesions = seg.report.get("lesions", [])
    false = [] if (labels == 2).any() else [round(x["volume_ml"], 2) for x in lesions
                                            if x["volume_ml"] > 1.0]
    out = {"liver_dice": round(dice(seg.labels >= 1, labels >= 1), 4),
           "false_lesions_over_1ml": false, "lesions": len(lesions),
           "shape": list(volume.shape)}
    if reference is not None:
        out["reference_labels_under_lesions"] = reference_under_lesions(seg.labels, *reference)
    return out


def references(reference: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> dict:
    """``reference`` (a label map of the full scan) for each of :func:`versions`: the full
    map, its liver crop, and the full map with the coarse copy's factor and plane axes."""
    crop = crop_to_mask_box(reference, labels, affine, labels >= 1, MARGIN_MM)[0]
    return {"full": (reference, 1, []), "crop": (crop, 1, []),
            "coarse": (reference, 2, in_plane_axes(affine))}


def scans(phantoms: int):
    total_ct = nib.load(SHARED / "totalsegmentator_example" / "example_ct_sm.nii.gz")
    total_seg = nib.load(SHARED / "totalsegmentator_example" / "example_seg.nii.gz")
    total = np.asarray(total_seg.dataobj).astype(np.int32)
    yield ("totalsegmentator_example", np.asarray(total_ct.dataobj, np.float32),
           (total == 5).astype(np.uint8), total_ct.affine, total)
    from keras_liverseg.phantom import case_seed, generate_case

    for i in range(phantoms):
        case = generate_case(case_seed(2, i), (512, 512, 80))
        yield f"phantom-seed2-{i}", case.volume, case.labels, case.affine, None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=3)
    parser.add_argument("--pixel-spacing", nargs="+", default=["none"])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--min-lesion-mm3", type=float)
    parser.add_argument("--lesion-growth-mm", type=float)
    parser.add_argument("--min-lesion-prob", type=float)
    parser.add_argument("--trace", action="store_true",
                        help="what the real example's reference labels hold under each lesion")
    args = parser.parse_args(argv)
    overrides = {key: getattr(args, key) for key in
                 ("min_lesion_mm3", "lesion_growth_mm", "min_lesion_prob")
                 if getattr(args, key) is not None}
    from keras_liverseg import zoo
    from keras_liverseg.inference.loading import load_model
    from keras_liverseg.models import inference_model, preprocessing_of

    models = {}
    for value in args.pixel_spacing:
        loaded = load_model("unet_sharp", args.weights)
        loaded = dataclasses.replace(
            loaded, postprocess=dataclasses.replace(loaded.postprocess, **overrides))
        if value != "none":  # the same weights, reading slices at that spacing
            net = zoo.load("unet_sharp", pixel_spacing=float(value))
            if args.weights != "default":
                net.load_weights(args.weights)
            loaded = dataclasses.replace(loaded, model=inference_model(net),
                                         preprocessing=preprocessing_of(net), _resized={})
        models[value] = loaded
    for name, volume, labels, affine, reference in scans(args.phantoms):
        traced = (references(reference, labels, affine)
                  if args.trace and reference is not None else {})
        for value, loaded in models.items():
            for version, arrays in versions(volume, labels, affine).items():
                print(json.dumps({"scan": name, "pixel_spacing": value, "version": version,
                                  **score(loaded, *arrays, traced.get(version))}),
                      flush=True)



if __name__ == "__main__":
    main()
