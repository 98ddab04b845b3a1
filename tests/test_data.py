"""Datasets, splits, decoded volumes, slice sampling and head targets."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from synthetic import blob_case, write_lits

from keras_liverseg.data.datasets import (
    Case,
    DatasetError,
    draw_phantoms,
    find_cases,
    phantom_cases,
    select_cases,
    split_cases,
    write_split,
)
from keras_liverseg.data.sampler import (
    Augmentation,
    SliceSampler,
    task_labels,
)
from keras_liverseg.data.volumes import case_arrays, load_volume, load_volumes
from keras_liverseg.io.slices import context_indices


@pytest.fixture(scope="module")
def lits(tmp_path_factory):
    return write_lits(tmp_path_factory.mktemp("lits"), count=5)


def test_lits_and_msd_layouts(lits, tmp_path):
    cases = find_cases(lits)
    assert [c.case_id for c in cases] == [f"volume-{i}" for i in range(5)]
    msd = tmp_path / "Task03_Liver"
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "labelsTr").mkdir()
    image, labels, affine = blob_case(0)
    nib.save(nib.Nifti1Image(image, affine), msd / "imagesTr" / "liver_7.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), msd / "labelsTr" / "liver_7.nii.gz")
    (case,) = find_cases(msd)
    assert case.case_id == "liver_7" and case.label.parent.name == "labelsTr"


def test_split_is_by_case_and_reproducible(lits, tmp_path):
    cases = find_cases(lits)
    train, val = split_cases(cases, 0.4, seed=3)
    assert len(val) == 2 and len(train) == 3
    assert not {c.case_id for c in train} & {c.case_id for c in val}
    assert split_cases(cases, 0.4, seed=3) == (train, val)
    assert any(split_cases(cases, 0.4, seed=s) != (train, val) for s in range(10))
    write_split(tmp_path / "split.json", train, val)
    assert split_cases(cases, split_file=tmp_path / "split.json") == (train, val)
    (tmp_path / "bad.json").write_text(json.dumps({"train": ["volume-99"]}))
    with pytest.raises(DatasetError, match="volume-99"):
        split_cases(cases, split_file=tmp_path / "bad.json")


@pytest.mark.parametrize("defect, message", [
    ("missing_label", "segmentation-1"),
    ("shape", "shape"),
    ("labels", "outside"),
])
def test_bad_data_names_the_case(tmp_path, defect, message):
    folder = write_lits(tmp_path / "d", count=2)
    image, labels, affine = blob_case(1)
    if defect == "missing_label":
        (folder / "segmentation-1.nii.gz").unlink()
        with pytest.raises(DatasetError, match=message):
            find_cases(folder)
        return
    if defect == "shape":
        labels = labels[:, :, :-1]
    else:
        labels[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(labels, affine), folder / "segmentation-1.nii.gz")
    case = find_cases(folder)[1]
    with pytest.raises(DatasetError, match=f"volume-1.*{message}"):
        load_volume(case)


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no cases"):
        find_cases(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        find_cases(tmp_path / "nope")


def test_volumes_are_canonical_and_cached(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    image, labels, affine = blob_case(2)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # stored LPS-like
    flip[:3, 3] = [63 * 1.5, 63 * 1.5, 0]
    nib.save(nib.Nifti1Image(image, flip), folder / "volume-0.nii.gz")
    nib.save(nib.Nifti1Image(labels, flip), folder / "segmentation-0.nii.gz")
    (case,) = find_cases(folder)
    volume = load_volume(case, tmp_path / "cache")
    # canonical P-L-S: rows anterior->posterior, columns right->left (see keras_liverseg.io)
    expected = nib.orientations.apply_orientation(
        image, nib.orientations.ornt_transform(nib.orientations.io_orientation(flip),
                                               nib.orientations.axcodes2ornt(("P", "L", "S"))))
    np.testing.assert_array_equal(volume.image, expected)
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".npy", ".npy"]
    again = load_volume(case, tmp_path / "cache")
    assert isinstance(again.image, np.memmap)
    np.testing.assert_array_equal(again.labels, volume.labels)
    assert volume.liver_slices.tolist() == np.flatnonzero(labels.max(axis=(0, 1)) >= 1).tolist()
    assert 0 not in volume.liver_slices


def test_sampler_is_deterministic_and_foreground_aware(lits):
    volumes = [load_volume(c) for c in find_cases(lits)]
    sampler = SliceSampler(volumes, (32, 32), context_slices=3, liver_fraction=0.0,
                           tumor_fraction=1.0, augmentation=Augmentation(), seed=7)
    x, y = sampler.batch(range(8))
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and y.shape == (8, 32, 32)
    x2, y2 = sampler.batch(range(8))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    tumors = SliceSampler(volumes, (32, 32), liver_fraction=0.0, tumor_fraction=1.0, seed=7)
    assert (tumors.batch(range(16))[1] == 2).any(axis=(1, 2)).all()  # forced onto tumor slices
    plain = SliceSampler(volumes, (32, 32), liver_fraction=0, tumor_fraction=0, seed=7)
    assert not np.array_equal(plain.batch(range(8))[0][..., 0], x[..., 1])


def test_context_and_task_labels():
    np.testing.assert_array_equal(context_indices(0, 3, 10), [0, 0, 1])
    np.testing.assert_array_equal(context_indices(9, 5, 10), [7, 8, 9, 9, 9])
    np.testing.assert_array_equal(task_labels(np.array([0, 1, 2]), "liver"), [0, 1, 1])
    np.testing.assert_array_equal(task_labels(np.array([0, 1, 2]), "tumor"), [0, 0, 1])


def test_liver_roi_crops_for_the_tumor_stage(lits):
    from keras_liverseg.data.roi import LiverROI
    from keras_liverseg.data.volumes import crop_to_liver

    volume = load_volume(find_cases(lits)[0])
    crop = crop_to_liver(volume, LiverROI(margin=0.1, slices=1))
    liver = np.asarray(volume.labels) >= 1
    assert (np.asarray(crop.labels) >= 1).sum() == liver.sum()  # the whole liver is inside
    assert crop.image.shape == crop.labels.shape
    assert all(crop.image.shape[a] < volume.image.shape[a] for a in (0, 1))
    assert crop.depth <= volume.liver_slices.size + 2
    np.testing.assert_array_equal(crop.tumor_slices - crop.tumor_slices.min(),
                                  volume.tumor_slices - volume.tumor_slices.min())


def test_clahe_spreads_a_narrow_window_and_keeps_the_rest():
    from keras_liverseg.data.clahe import clahe

    rng = np.random.default_rng(0)
    image = rng.normal(60, 5, (64, 64)).astype(np.float32)  # low-contrast soft tissue
    image[:8] = -1000.0  # air, outside the window
    out = clahe(image, window=(-100, 400), clip_limit=4.0, tiles=(4, 4))
    np.testing.assert_array_equal(out[:8], image[:8])
    assert out[8:].std() > 3 * image[8:].std()  # contrast stretched
    assert out[8:].min() >= -100 and out[8:].max() <= 400
    order = np.argsort(image[8:40, 8:40].ravel())  # locally monotone mapping
    assert np.corrcoef(image[8:40, 8:40].ravel()[order], out[8:40, 8:40].ravel()[order])[0, 1] > 0.9
    flat = np.full((32, 32), 150.0, np.float32)
    assert np.ptp(clahe(flat, tiles=(2, 2))) < 1e-3  # a flat slice stays flat


def test_case_arrays_for_scoring_scripts(lits):
    rows = list(case_arrays(lits, ["volume-3", "volume-1"]))
    assert [row[0] for row in rows] == ["volume-3", "volume-1"]
    case_id, image, labels, voxel_mm3, spacing = rows[0]
    volume = load_volume(select_cases(find_cases(lits), ["volume-3"])[0])
    assert image.dtype == np.float32 and labels.dtype == np.uint8
    np.testing.assert_array_equal(image, volume.image)
    np.testing.assert_array_equal(labels, volume.labels)
    zooms = nib.load(lits / "volume-3.nii.gz").header.get_zooms()
    assert voxel_mm3 == pytest.approx(float(np.prod(zooms[:3])))
    assert sorted(spacing) == pytest.approx(sorted(zooms[:2]))  # canonical rows, columns
    with pytest.raises(DatasetError, match="unknown case id.*volume-9"):
        case_arrays(lits, ["volume-1", "volume-9"])  # at once, before any case is read


def test_threaded_batches_train_exactly_like_one_thread(lits):
    import keras

    from keras_liverseg import losses
    from keras_liverseg.data.pydataset import SliceBatches, sampler_threads

    assert 1 <= sampler_threads() <= 8 and sampler_threads(limit=1) == 1
    volumes = [load_volume(c) for c in find_cases(lits)]
    sampler = SliceSampler(volumes, (32, 32), 3, 0.5, 0.3, Augmentation(), seed=4)
    weights = []
    for workers in (1, 3):
        keras.utils.set_random_seed(0)
        ct = keras.Input((32, 32, 3))
        hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(ct / 100.0)
        mask = keras.layers.Conv2D(3, 1, activation="softmax", name="mask")(hidden)
        model = keras.Model(ct, {"mask": mask})
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss={"mask": losses.SegLoss(per_image=False)})
        data = SliceBatches(sampler, {"mask": (32, 32, 3)}, batch_size=2, steps=8,
                            workers=workers)
        assert data.workers == workers
        before = [w.copy() for w in model.get_weights()]
        model.fit(data, epochs=1, verbose=0)
        weights.append(model.get_weights())
    # the same batches in the same order: identical weights, and training moved them
    for one, many in zip(*weights, strict=True):
        np.testing.assert_array_equal(one, many)
    assert not all(np.array_equal(a, b) for a, b in zip(before, weights[1], strict=True))


@pytest.mark.parametrize("model", ["unet_sharp", "unet_sharp_roi"])
def test_a_drawn_phantom_is_what_the_sampler_would_cut_from_the_full_size_one(model):
    """liverseg train --phantoms resizes each phantom once; the sampler then sees the
    slices it would have cut from the full-size phantom (the default weights' training)."""
    from keras_liverseg import zoo
    from keras_liverseg.data.volumes import crop_to_liver, volume_from_arrays
    from keras_liverseg.io import to_canonical
    from keras_liverseg.io.slices import resize_labels, slice_stack
    from keras_liverseg.phantom import case_seed, generate_case

    roi = zoo.get_entry(model).liver_roi
    size = (192, 192)
    [volume] = draw_phantoms(phantom_cases(4)[3:], 1, (512, 512, 6), size,
                             crop=roi is not None, roi=roi)
    assert volume.case_id == "volume-3"
    assert volume.image.dtype == np.int16 and volume.labels.dtype == np.uint8
    full = generate_case(case_seed(1, 3), (512, 512, 6))
    image, _, _ = to_canonical(full.volume, full.affine)
    truth, _, _ = to_canonical(full.labels, full.affine)
    if roi is not None:  # what liverseg train --liver-roi feeds the sampler
        cut = crop_to_liver(volume_from_arrays("volume-3", image, truth.astype(np.uint8)), roi)
        assert cut.image.shape[0] < image.shape[0]
        image, truth = cut.image, cut.labels
    assert volume.image.shape == (*size, image.shape[2])
    assert volume.liver_slices.size and (volume.labels >= 1).any()
    # the sampler resizes the full-size slices with their neighbours; draw_phantoms once
    np.testing.assert_allclose(slice_stack(volume.image, [1, 4], 3, size),
                               slice_stack(image, [1, 4], 3, size), atol=0.5)
    for k in (1, 4):
        np.testing.assert_array_equal(volume.labels[:, :, k],
                                      resize_labels(truth[:, :, k], size))


def test_phantoms_drawn_in_worker_processes_are_the_same_and_named_for_split_files(tmp_path):
    cases = phantom_cases(3)
    assert [c.case_id for c in cases] == ["volume-0", "volume-1", "volume-2"]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["volume-2", "volume-0"], "validation": ["volume-1"]}))
    train, validation = split_cases(cases, split_file=split)
    assert [c.case_id for c in train] == ["volume-2", "volume-0"]
    here = draw_phantoms(train, 7, (64, 64, 8), processes=1)
    there = draw_phantoms(train, 7, (64, 64, 8), processes=2)
    assert [v.case_id for v in there] == ["volume-2", "volume-0"]
    for one, other in zip(here, there, strict=True):
        assert one.image.shape == (64, 64, 8)
        np.testing.assert_array_equal(one.image, other.image)
        np.testing.assert_array_equal(one.labels, other.labels)
    assert not np.array_equal(here[0].image, here[1].image)  # two cases, not one twice
    with pytest.raises(DatasetError, match="phantom cases are named volume-N"):
        draw_phantoms([Case("liver_3", None, None)], 7, (64, 64, 8))  # an MSD-style id


def test_dataset_cases_decoded_in_worker_processes_are_read_from_the_cache(lits, tmp_path):
    """liverseg train --data with --workers: the cases not cached yet are decoded in worker
    processes; the volumes are then the ones a single process reads, in the cases' order."""
    cases = find_cases(lits)[::-1]
    cache = tmp_path / "cache"
    load_volume(cases[0], cache)  # one case cached already: only the others are decoded
    there = load_volumes(cases, cache, processes=2)
    assert len(list(cache.glob("*.npy"))) == 2 * len(cases)
    here = load_volumes(cases)  # no cache, one process
    assert [v.case_id for v in there] == [c.case_id for c in cases]
    for one, other in zip(here, there, strict=True):
        assert isinstance(other.image, np.memmap)  # read from the cache
        np.testing.assert_array_equal(one.image, other.image)
        np.testing.assert_array_equal(one.labels, other.labels)
        np.testing.assert_array_equal(one.liver_slices, other.liver_slices)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("volume-0.nii.gz", "segmentation-0.nii.gz", "volume-1.nii.gz"):
        (broken / name).symlink_to(lits / name)
    (broken / "segmentation-1.nii.gz").write_bytes(b"not a NIfTI file")
    with pytest.raises(DatasetError, match="case volume-1"):  # a worker's error, as it is
        load_volumes(find_cases(broken), tmp_path / "cache2", processes=2)


def test_sampler_worker_processes_serve_the_sampler_stream_in_order(lits):
    """liverseg train --workers N on TensorFlow: tf.data reads a multiprocessing PyDataset."""
    pytest.importorskip("tensorflow")
    from keras_liverseg.data.tfdata import slice_dataset

    volumes = [load_volume(c) for c in find_cases(lits)]
    sampler = SliceSampler(volumes, (32, 32), 3, 0.4, 0.4, Augmentation(), seed=5)
    served = list(slice_dataset(sampler, {"mask": (32, 32, 3)}, batch_size=3, start=6,
                                count=4, workers=2).as_numpy_iterator())
    assert len(served) == 4
    for i, (x, targets) in enumerate(served):
        want_x, want_y = sampler.batch(range(6 + 3 * i, 6 + 3 * i + 3))
        assert x.shape == (3, 32, 32, 3)
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(targets["mask"], want_y)


def test_slice_stack_reads_each_slice_once_and_gives_every_input_its_neighbours():
    """Each input is its slice's neighbours, edges repeated, NaN filled, each slice resized
    as resize_axes resizes it, whatever runs or gaps ``ks`` has; integer volumes too."""
    from keras_liverseg.io.slices import resize_axes, slice_stack

    rng = np.random.default_rng(3)
    volume = rng.normal(0, 200, (40, 30, 9)).astype(np.float32)
    volume[5, 6, 4] = np.nan
    volume[7, 8, 8] = np.inf
    for ks in ([0, 1, 2, 3], [8], [2, 5, 8], [3, 4]):
        for context in (1, 3, 5):
            got = slice_stack(volume, ks, context, (24, 20), nan_fill=-1024.0)
            assert got.shape == (len(ks), 24, 20, context) and got.flags.c_contiguous
            for b, k in enumerate(ks):
                for c in range(context):
                    j = min(max(k + c - context // 2, 0), 8)
                    plane = np.nan_to_num(volume[:, :, j], nan=-1024.0, posinf=-1024.0)
                    np.testing.assert_array_equal(got[b, :, :, c],
                                                  resize_axes(plane, (24, 20), axes=(0, 1)))
    ints = np.round(np.nan_to_num(volume, posinf=0.0)).astype(np.int16)
    np.testing.assert_array_equal(slice_stack(ints, [0, 3], 3, (24, 20), nan_fill=-1024.0),
                                  slice_stack(ints.astype(np.float32), [0, 3], 3, (24, 20)))
