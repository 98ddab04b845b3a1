"""A peer's time on the same scan and CPU: a 3D nnU-Net-sized U-Net at 3 mm (issue 24, part 4).

What TotalSegmentator's ``--fast`` mode runs is an nnU-Net 3D full-resolution network on the
scan resampled to 3 mm isotropic, predicted by sliding windows. This script times the same
kind of work with MONAI in PyTorch, random weights (only time is compared):

* the network: MONAI ``DynUNet`` in nnU-Net's default 3D topology (6 stages, widths 32, 64,
  128, 256, 320, 320, 3x3x3 kernels, strides 1, 2, 2, 2, 2, 2, instance norm, leaky ReLU,
  2 classes);
* the scan resampled (trilinear) to 3 mm, cut into 128^3 patches with 50 % overlap and
  Gaussian weighting (``monai.inferers.sliding_window_inference``; nnU-Net's defaults, no
  mirroring), the argmax resampled back (nearest) to the scan's grid.

It prints the whole process (imports included; reading and, with ``-o``, writing
the NIfTI files), and the resampling and network times.
It needs torch and monai (``pip install -e ".[bench]"``), never a dependency of the package;
TotalSegmentator's own plan for its 3 mm model was not read (no internet here), so the
topology is nnU-Net's default for isotropic CT, not that exact plan.

Usage::

    python benchmarks/bench_peer.py data/parity/volume-0.nii.gz
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402
from monai.networks.nets import DynUNet  # noqa: E402

IMPORTED = time.perf_counter()


def network() -> torch.nn.Module:
    strides = [1, 2, 2, 2, 2, 2]
    return DynUNet(spatial_dims=3, in_channels=1, out_channels=2, kernel_size=[3] * 6,
                   strides=strides, upsample_kernel_size=strides[1:],
                   filters=[32, 64, 128, 256, 320, 320], norm_name="instance",
                   act_name=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
                   res_block=False).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan")
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("-o", "--output", default=None, help="write the labels here (NIfTI)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    tick = time.perf_counter()
    image = nib.load(args.scan)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    read_s = time.perf_counter() - tick

    tick = time.perf_counter()
    size = [max(1, round(n * z / args.spacing)) for n, z in zip(volume.shape, zooms, strict=True)]
    x = torch.from_numpy(np.clip(volume, -1000, 1000) / 1000.0)[None, None]
    x = torch.nn.functional.interpolate(x, size=size, mode="trilinear", align_corners=False)
    resample_s = time.perf_counter() - tick

    model = network()
    tick = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(x, (args.patch,) * 3, sw_batch_size=1,
                                          predictor=model, overlap=0.5, mode="gaussian")
    network_s = time.perf_counter() - tick

    tick = time.perf_counter()
    labels = logits.argmax(1, keepdim=True).float()
    labels = torch.nn.functional.interpolate(labels, size=list(volume.shape), mode="nearest")
    labels = labels[0, 0].to(torch.uint8).numpy()
    back_s = time.perf_counter() - tick
    tick = time.perf_counter()
    if args.output:
        nib.save(nib.Nifti1Image(labels, image.affine), args.output)
    write_s = time.perf_counter() - tick
    print(json.dumps({
        "scan": args.scan, "shape": list(volume.shape), "resampled": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "import_s": round(IMPORTED - STARTED, 2), "read_s": round(read_s, 2),
        "resample_s": round(resample_s + back_s, 2), "network_s": round(network_s, 2),
        "write_s": round(write_s, 2),
        "process_s": round(time.perf_counter() - STARTED, 2),
        "labelled_voxels": int(labels.sum()),
    }))


if __name__ == "__main__":
    main()
