#!/usr/bin/env bash
# Issue 22 part 5 on a lent GPU machine (the device tool), in one call.
#
# Here, once per checkout (the machine has JAX but no Keras, nibabel or pydicom, no git
# history and no internet; the wheels travel in the git-ignored .whl/, 8 MB, and generator
# 1.1.0, commit 74a47ee's package without its weights, in the git-ignored .gen11/, 0.6 MB):
#
#   bash research/unet_sharp/device_v4.sh wheels
#
# Then one device call (kind nvidia-h100-x1 or nvidia-h200, carry [".whl", ".gen11"],
# timeout_s 600):
#
#   bash research/unet_sharp/device_v4.sh run
#
# which installs the wheels and this checkout into /tmp/site, runs `default_weights.sh v4`
# (stage 2's 192 training phantoms of generator 1.1.0 replayed: written to disk by 14
# processes from .gen11; 480 phantoms of this checkout's generator (2.4.0 now), drawn in memory
# by 14 processes; then training from the shipped weights on the JAX backend) and copies the
# run's best and last weights, its history, config, split, model card and log to $OUT, where
# they come back to this machine. A call runs at most 10 minutes and a session has 15
# minutes of device time, the machine's start included, so training gets 5 minutes here
# (V4_MINUTES; default_weights.sh alone says 8): about 1 minute to write the replay, 2 to
# draw the new phantoms and 1 to compile come before them. Score them here afterwards, on
# the CPU:
#
#   WEIGHTS=<files_at>/best.weights.h5 TAG=-v4 \
#       PREDICT_ARGS="--min-lesion-mm3 500 --lesion-growth-mm 10" \
#       bash research/unet_sharp/default_weights.sh evaluate
#
# V4_MINUTES=M, V4_PHANTOMS=N, V4_REPLAY=N, V4_INIT=FILE (start weights other than the
# shipped ones, e.g. research/unet_sharp/candidates/v7mix-last.weights.h5),
# V4_LIVER_FRACTION and V4_TUMOR_FRACTION (default 0.4 and 0.4) and V4_COARSE (the share of
# slices read coarse, liverseg train --coarse; default 0) change the run. Dry run on
# the CPU in a Python 3.12 venv holding only what the device has (jax, numpy, scipy, h5py, click, pillow,
# absl-py, rich, ml-dtypes, packaging, typing-extensions, setuptools, wheel) and no
# TensorFlow: OUT=/tmp/devout V4_MINUTES=0.5 V4_PHANTOMS=8 bash ... run went through in
# 4.3 minutes and brought back both weights files (2026-12-06, before the replay);
# again with the replay, 2026-12-07 (threadpoolctl added to that venv: the package needs it
# since 2026-12-06, and the device's image holds it): OUT=/tmp/devout V4_MINUTES=0.5
# V4_PHANTOMS=8 V4_REPLAY=4 bash ... run wrote 4 generator-1.1.0 phantoms from .gen11, drew
# the 8 others, trained on "10 training and 2 validation cases" and brought back both
# weights files, in 10.5 minutes while another job used the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
step=${1:-}

if [[ $step == wheels ]]; then
  # the device's python is 3.12; absl-py, numpy, rich, h5py, ml-dtypes, packaging, scipy,
  # click, pillow and typing-extensions are already there (device tool, KINDS.md)
  rm -rf .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    keras==3.15.1 namex optree nibabel==5.4.2 pydicom==3.0.2
  ls .whl
  # generator 1.1.0 for the replay (default_weights.sh's with_generator_11 reads $GEN11)
  rm -rf .gen11 && mkdir .gen11
  git archive 74a47ee keras_liverseg | tar -x -C .gen11 --exclude='*.h5'
  du -sh .gen11
  exit 0
fi

if [[ $step == run ]]; then
  : "${OUT:?OUT must name the folder the results go to (the device tool sets it)}"
  site=/tmp/site
  # the wheels and this checkout (built offline with the machine's setuptools: cli/ is
  # keras_liverseg.cli only once installed), with its `liverseg` command, in one go
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --no-cache-dir --upgrade --target "$site" .whl/*.whl .
  export PYTHONPATH="$site" PATH="$site/bin:$PATH" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
  [[ -f .gen11/keras_liverseg/phantom/__init__.py ]] || {
    echo "Error: no .gen11 (run the wheels step here and carry .gen11)" >&2; exit 2; }
  export GEN11=$PWD/.gen11
  [[ $(command -v liverseg) == "$site/bin/liverseg" ]] || {
    echo "Error: liverseg is not $site/bin/liverseg" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
  export V4_MINUTES=${V4_MINUTES:-5}
  rm -rf runs/unet_sharp-v4
  status=0
  bash research/unet_sharp/default_weights.sh v4 2>&1 | tee "$OUT/v4.log" || status=$?
  run=runs/unet_sharp-v4
  for file in checkpoints/best.weights.h5 checkpoints/last.weights.h5 history.csv \
      config.json split.json model_card.md; do
    [[ -f $run/$file ]] && cp "$run/$file" "$OUT/"
  done
  ls -la "$OUT"
  exit "$status"
fi

echo "usage: bash research/unet_sharp/device_v4.sh wheels|run" >&2
exit 2
