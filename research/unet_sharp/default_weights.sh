#!/usr/bin/env bash
# Reproduce the default weights of `unet_sharp` and every number of its model card.
#
#   bash research/unet_sharp/default_weights.sh [train|gpu|v4|v4cpu|v4mix|v4ship|v5mix|v6mix|v7mix|v8mix|v9mix|v10mix|v11mix|v5ship|val11|evaluate|validate|stepa|stepb|all]  (default: all)
#
# train:    liverseg train in two stages, on phantoms only:
#           1. runs/unet_sharp-stage1: 40 phantoms (seed 1, 80 slices), UNet#'s own mixed loss
#              from scratch; it learns the liver but never predicts tumor (its per-image Dice
#              rewards empty tumor maps on the many tumor-free slices);
#           2. runs/unet_sharp-default: 240 phantoms (seed 1, 64 slices), from stage 1's best
#              weights, batch Dice + cross-entropy, 40 % of the slices drawn from tumor slices.
#              Stage 1's 32 training cases were too few: it fitted their tumors (Dice 0.9 on
#              training slices) but not new ones (0.3), so stage 2 sees six times as many.
#           Both drew generator 1.1.0 (`liverseg sample-data` of this checkout): repeat them
#           at commit 74a47ee.
# gpu:      stage 3, the shipped weights (version 3): liverseg train --phantoms from stage 2's
#           weights on a GPU machine with the JAX backend (an H200 of the device tool:
#           294,400 slices in 6 minutes, 10 times what stages 1 and 2 saw), on stage 2's
#           training phantoms plus 240 more (seed 1, cases 240-479) drawn there (at 64
#           slices; the v3 run drew them at 80).
#           Not part of `all` (on a CPU it runs, but takes days for the same slice count:
#           use --steps 9200 instead of --minutes there).
# v4:       the retraining of issue 22 (part 5), prepared for a GPU machine (JAX backend):
#           from the shipped weights (--init zoo:unet_sharp; version 4 since 2026-12-07),
#           on 480 phantoms of this checkout's generator (seed 5; 2.3.0 since 2026-12-07:
#           fluid-filled loops against the liver, after 2.2.0's bulging masses) and, replayed from
#           disk (--data beside --phantoms), stage 2's 192 training phantoms of generator
#           1.1.0 (volume-1000 and up, from $GEN11 or a worktree of 74a47ee), reading slices
#           at the entry's 2.1 mm pixel spacing with field-of-view crops (the zoo entry's
#           config; the sampler's Augmentation), 8 minutes. Not part of `all`; not yet run.
#           On the device tool's machine, in one call: research/unet_sharp/device_v4.sh.
# v4cpu:    the same retraining within a CPU session's budget (TensorFlow, bfloat16), from
#           version 3: 120 phantoms of generator 2.0 (seed 5; drawn in memory by this
#           checkout's generator: 2.1 since 2026-12-07, so repeat it at 0431ffb), batch
#           16, lr 3e-4, 75 minutes (10 epochs of 150 steps, 24,000 slices on a 2-core AMD
#           EPYC). Run on 2026-12-05 and not shipped: zoo/unet_sharp.md, "Retraining on
#           phantoms 2.0 within a CPU budget".
# v4mix:    v4cpu with replay of what the shipped weights learnt from: the same 120
#           phantoms of generator 2.0 (seed 5, drawn from a worktree of 0431ffb into
#           data/phantoms2-train120) plus 60 phantoms of generator 1.1.0 (the first 60
#           training cases of stage 2's split, seed 1, drawn from a worktree of commit
#           74a47ee into data/phantoms11-replay60 as volume-1000 and up), in one --data
#           folder of links (data/v4mix), 70 minutes (V4MIX_MINUTES). Answers v4cpu's loss
#           of generator-1.1 tumor Dice. Run on 2026-12-06: zoo/unet_sharp.md, "Retraining
#           on phantoms 2.0 within a CPU budget".
# v5mix:    v4mix from version 4 (the shipped weights; V5_INIT= other weights) with
#           generator 2.1.0's 120 cases (seed 5, data/phantoms21-train120: v4mix's cases with
#           the periportal fat sheath) beside the same 60 generator-1.1.0 cases, 50 minutes
#           (V5MIX_MINUTES), into runs/unet_sharp-v5mix. Run on 2026-12-07 (its cases
#           drawn from a worktree of 1084d87 since generator 2.2).
# v6mix:    v5mix with generator 2.2.0 (a large mass under the capsule bulges out of the
#           liver): the same 120 cases (data/phantoms22-train120), 40 cases of one large
#           heterogeneous mass each (seed 6, data/phantoms22-mass40, volume-2000 and up)
#           and the same 60 generator-1.1.0 cases, 55 minutes (V6MIX_MINUTES), into
#           runs/unet_sharp-v6mix.
# v7mix:    v6mix's data and split again, from v6mix's last weights (kept in candidates/),
#           drawing slices with liverseg train's default shares (50 % from slices with
#           liver, 15 % with tumor; every earlier stage drew 40 % / 40 %), 50 minutes
#           (V7MIX_MINUTES), into runs/unet_sharp-v7mix.
# v8mix:    v7mix on generator 2.3.0 (a fluid-filled loop against the liver's lower surface in
#           60 % of cases; coarse reconstruction to 9 mm pixels): the same cases drawn again
#           (data/phantoms23-train120, data/phantoms23-mass40) beside the same 60 generator-1.1.0
#           cases, so the run's split is v7mix's; from v7mix's last weights (candidates/), with
#           its shares (0.5 / 0.15), 50 minutes (V8MIX_MINUTES), into runs/unet_sharp-v8mix.
# v9mix:    v8mix on generator 2.4.0 (a fat junction with branching clefts where the fissures
#           meet the left portal vein, in most livers): the same cases drawn again
#           (data/phantoms24-train120, data/phantoms24-mass40) beside the same 60
#           generator-1.1.0 cases, so the split is v7mix's; from v8mix's last weights
#           (candidates/), with its shares (0.5 / 0.15), 50 minutes (V9MIX_MINUTES), into
#           runs/unet_sharp-v9mix.
# v10mix:   v9mix's data and split again, from v9mix's last weights (candidates/; free of
#           the real example's bifurcation lesion at full resolution), with twice its tumor
#           share (0.5 / 0.3) to win back the validation tumor Dice v9mix lost, 50 minutes
#           (V10MIX_MINUTES), into runs/unet_sharp-v10mix. Run for 30 minutes on 2026-12-07
#           (750 steps on a Xeon with AMX; lost unscored with its machine), then again the
#           same day as MIX_STEPS=750 under the rule research/unet_sharp/rules/v10.md.
# v11mix:   v9mix's data, split and slice shares (0.5 / 0.15) from v9mix's last weights, with
#           a quarter of the slices read as a 3-9 mm reconstruction would show them
#           (liverseg train --coarse 0.25; V11_COARSE), for the real example's 6 mm copy,
#           where every candidate so far marks the portal bifurcation; 750 steps
#           (V11MIX_STEPS), into runs/unet_sharp-v11mix. Rule: research/unet_sharp/rules/v11.md.
# v4ship:   the default weights version 4 (shipped 2026-12-07): half-way between version 3
#           (from git) and v4mix's last weights (the second run's, kept in candidates/;
#           V4MIX_LAST= another run's), into runs/unet_sharp-v4ship/alpha-0.5.weights.h5.
#           zoo/unet_sharp.md, "Version 4".
# v5ship:   the default weights version 5 (shipped 2026-12-07): half-way between version 4 (from
#           git at 7b69bcf) and v8mix's last weights (kept in candidates/; V8MIX_LAST= another
#           run's), into runs/unet_sharp-v5ship/alpha-0.5.weights.h5. zoo/unet_sharp.md,
#           "Version 5".
# val11:    validate's 28 validation phantoms drawn with generator 1.1.0 (a worktree of
#           74a47ee) into data/phantoms11-val28, for lesion_prob_sweep.py's comparison of
#           candidate weights on the generator the shipped weights learnt from; VAL=48: all
#           48 of stage 2's validation cases, into data/phantoms11-val48.
# evaluate: 10 held-out phantoms (seed 2, never used in training) -> liverseg predict ->
#           liverseg evaluate; and predictions on the two real CT examples in ../shared/data.
#           The held-out set is generator 1.1.0's, drawn from a git worktree of commit
#           74a47ee (the last with that generator) into data/phantoms-test; a second set
#           from generator 2.0 (seed 4, never used in training; drawn from a worktree of
#           0431ffb) goes to data/phantoms2-test, and the same seed's cases of generator 2.1
#           (the periportal fat sheath; a worktree of 1084d87) to data/phantoms21-test.
# validate: the 28 validation phantoms that picked no checkpoint (validation cases 21-48 of
#           the stage-2 split; the first 20 are scored during training) -> liverseg predict ->
#           liverseg evaluate, into data/val28-*; compares candidate weights without
#           touching the held-out set. VAL=20 scores the first 20 validation cases (the
#           ones that picked stage 3's checkpoint) into data/val20-* instead. Not part of
#           `all`.
# stepa:    step A of a retraining rule (research/unet_sharp/rules/) for CANDIDATE=NAME, the
#           weights WEIGHTS=FILE (default as below), at version 5's post-processing
#           (POST_ARGS, default --min-lesion-mm3 500 --lesion-growth-mm 10
#           --min-lesion-prob 0.3): the validation cases of v7mix's split (SPLIT, default
#           research/unet_sharp/splits/v7mix.json) under 1000 and from 2000, drawn with
#           generator 2.2.0 (a worktree of 8d86d47) -> lesion_prob_sweep.py ->
#           data/stepA-NAME/validation.json (and .txt), and both real examples ->
#           liverseg predict -> data/stepA-NAME/real -> real_examples.py -> real.json.
#           Then: python research/unet_sharp/rule_check.py stepa data/stepA-v5 data/stepA-NAME
# stepb:    step B for the same weights, under TAG=-NAME: evaluate (the held-out sets and
#           the real examples) at POST_ARGS, then visible_tumor_dice.py on the generator-2.0
#           held-out predictions and field_of_view.py --trace (into data/stepB-NAME-*.txt),
#           then rule_check.py stepb on the held-out 1.1.0 metrics (issue 22's gate)
# WEIGHTS=FILE overrides the weights that evaluate and validate predict with (default: stage
# 3's best weights if runs/unet_sharp-gpu holds them, else stage 2's, else the shipped ones,
# keras_liverseg/weights/unet_sharp.weights.h5); SPLIT=FILE the split file validate reads
# (default: research/unet_sharp/splits/phantoms-train-240.json, stage 2's split).
# PREDICT_ARGS="--tta" (say) adds options to every liverseg predict of evaluate and validate;
# TAG=-tta (say) then keeps those predictions and metrics apart (data/...-pred-tta,
# data/...-metrics-tta.json, data/real-tta).
# All but the gpu stage run on the CPU. Outputs: data/, runs/ (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root: data/ and runs/ are relative to it
stage=${1:-all}
stage1=runs/unet_sharp-stage1
run=runs/unet_sharp-default
gpu_run=runs/unet_sharp-gpu
if [[ -f $gpu_run/checkpoints/best.weights.h5 ]]; then
  weights=${WEIGHTS:-$gpu_run/checkpoints/best.weights.h5}
elif [[ -f $gpu_run/best.weights.h5 ]]; then  # a stage 3 of the former scripts/train_on_gpu.py
  weights=${WEIGHTS:-$gpu_run/best.weights.h5}
elif [[ -f $run/checkpoints/best.weights.h5 ]]; then
  weights=${WEIGHTS:-$run/checkpoints/best.weights.h5}
else  # no training run here: the shipped weights (their own post-processing, by SHA-256)
  weights=${WEIGHTS:-keras_liverseg/weights/unet_sharp.weights.h5}
fi
# version 5's post-processing, which a rule's candidates are scored at
read -r -a post_args <<< "${POST_ARGS:---min-lesion-mm3 500 --lesion-growth-mm 10 --min-lesion-prob 0.3}"
if [[ $stage == stepb ]]; then
  : "${TAG:?TAG=-NAME names the outputs of step B}"
  predict_args=("${post_args[@]}")
else
  read -r -a predict_args <<< "${PREDICT_ARGS:-}"
fi
tag=${TAG:-}

# score VOLUMES PRED LABELS JSON: liverseg predict the volumes in VOLUMES into PRED, name the
# outputs segmentation-N as LABELS does, and liverseg evaluate them against LABELS into JSON.
score() {
  mkdir -p "$2"
  liverseg predict "$1" -o "$2" --weights "$weights" --overwrite --quiet ${predict_args[@]+"${predict_args[@]}"}
  for f in "$2"/volume-*.nii.gz; do
    n=$(basename "$f" .nii.gz); mv "$f" "$2/segmentation-${n#volume-}.nii.gz"
  done
  liverseg evaluate --pred "$2" --gt "$3" --json "$4" --overwrite
}

# predict_real OUT: liverseg predict both real examples of ../shared/data into OUT (labels,
# reports, overlays) with $weights and the predict arguments
predict_real() {
  local shared=../shared/data
  mkdir -p "$1"
  liverseg predict "$shared/totalsegmentator_example/example_ct_sm.nii.gz" \
    -o "$1/totalsegmentator_example_seg.nii.gz" --weights "$weights" \
    --report "$1/totalsegmentator_example.json" \
    --overlay "$1/totalsegmentator_example.png" --overwrite --quiet \
    ${predict_args[@]+"${predict_args[@]}"}
  liverseg predict "$shared/dcmqi_ct_3slice" -o "$1/dcmqi_ct_3slice_seg.nii.gz" \
    --weights "$weights" --report "$1/dcmqi_ct_3slice.json" \
    --overlay "$1/dcmqi_ct_3slice.png" --overwrite --quiet \
    ${predict_args[@]+"${predict_args[@]}"}
}

# draw ROOT VERSION OUT SEED OFFSET CASES...: draw CASES of the generator module under path
# ROOT ("" = this checkout), which must be generator VERSION, with SEED into OUT as
# volume-(OFFSET + i), $DRAW_PROCESSES (2)
# processes at a time (what `liverseg sample-data --seed SEED` writes for case i: it depends
# on the seed and i alone). python3, as on the GPU machine (it has no `python`)
draw() {
  python3 - "$@" <<'PY'
import json
import os
import sys
root, version, out, seed, offset, *cases = sys.argv[1:]
if root:
    sys.path.insert(0, root)
from multiprocessing import Pool
from pathlib import Path

from keras_liverseg.phantom import GENERATOR_VERSION, case_seed, generate_case
from keras_liverseg.phantom.dataset import case_paths, write_case

assert GENERATOR_VERSION == version, (GENERATOR_VERSION, version)

options = json.loads(os.environ.get("DRAW_OPTIONS") or "{}")


def one(n: int) -> None:
    if not all(path.exists() for path in case_paths(out, int(offset) + n)):
        case = generate_case(case_seed(int(seed), n), (512, 512, 64), **options)
        write_case(case, out, int(offset) + n)


Path(out).mkdir(parents=True, exist_ok=True)
with Pool(int(os.environ.get("DRAW_PROCESSES", "2"))) as pool:
    pool.map(one, [int(n) for n in cases], chunksize=1)
(Path(out) / "generator.txt").write_text(GENERATOR_VERSION + "\n")
print(f"{out}: {len(cases)} cases of generator {GENERATOR_VERSION}")
PY
}

# split_ids FILE PART FIRST LAST: cases FIRST .. LAST-1 of list PART ("train" or
# "validation") of split file FILE, as bare numbers (python3, as on the GPU machine)
split_ids() {
  python3 - "$@" <<'PY'
import json, sys
path, part, first, last = sys.argv[1:]
print(*(c.removeprefix("volume-") for c in json.load(open(path))[part][int(first):int(last)]))
PY
}
# stage 2's split: its training cases are the generator-1.1.0 phantoms (seed 1) the shipped
# weights learnt from
stage2_split=research/unet_sharp/splits/phantoms-train-240.json

# with_generator REV PRESET COMMAND...: run COMMAND with $gen naming a copy of commit REV's
# package: PRESET if it is not empty, else a git worktree of REV (removed afterwards)
with_generator() {
  local rev=$1 preset=$2
  shift 2
  if [[ -n $preset ]]; then
    gen=$preset "$@"
  else
    git worktree add -f "/tmp/liverseg-$rev" "$rev" >/dev/null
    gen=/tmp/liverseg-$rev "$@"
    git worktree remove --force "/tmp/liverseg-$rev"
  fi
}
# generator 1.1.0 (commit 74a47ee; $GEN11 if set: device_v4.sh carries one) and 2.0.0
# (commit 0431ffb, the last before 2.1.0's periportal fat sheath)
with_generator_11() { with_generator 74a47ee "${GEN11:-}" "$@"; }
with_generator_20() { with_generator 0431ffb "" "$@"; }
# generator 2.1.0 (commit 1084d87, the last before 2.2.0's bulging masses)
with_generator_21() { with_generator 1084d87 "" "$@"; }

# check_sha256 FILE SHA256: stop unless FILE has that SHA-256
check_sha256() { echo "$2  $1" | sha256sum --check --quiet; }
# weights_from_git FILE REV SHA256: the bundled default weights as commit REV shipped them,
# taken from git into FILE (unless there) and checked by SHA-256
weights_from_git() {
  if [[ ! -f $1 ]]; then
    mkdir -p "$(dirname "$1")"
    git show "$2:keras_liverseg/weights/unet_sharp.weights.h5" > "$1.partial"
    mv "$1.partial" "$1"
  fi
  check_sha256 "$1" "$3"
}
# v3_weights: the default weights version 3 (what v4cpu and v4mix started from, and half of
# version 4); v4_weights: version 4 (half of version 5)
v3_weights=data/unet_sharp-v3.weights.h5
get_v3_weights() {
  weights_from_git "$v3_weights" 8148e99 \
    580fe6d372f3397410f346eca1d9df07f81014e187ceb8102299ecca02b4fa31
}
v4_weights=data/unet_sharp-v4.weights.h5

if [[ $stage == train || $stage == all ]]; then
  liverseg sample-data -o data/phantoms-train --cases 40 --seed 1 --size 512 512 80
  liverseg train --data data/phantoms-train --model unet_sharp --epochs 6 \
    --steps-per-epoch 300 --batch-size 8 --lr 2e-3 --seed 0 -o "$stage1"
  liverseg sample-data -o data/phantoms-train-240 --cases 240 --seed 1 --size 512 512 64
  liverseg train --data data/phantoms-train-240 --model unet_sharp \
    --init "$stage1/checkpoints/best.weights.h5" --loss dice_ce --liver-fraction 0.4 \
    --tumor-fraction 0.4 --epochs 8 --steps-per-epoch 250 --batch-size 8 --lr 1e-3 --seed 0 \
    -o "$run"
fi

if [[ $stage == gpu ]]; then
  [[ -f $run/checkpoints/best.weights.h5 ]] || {
    echo "Error: no stage-2 weights in $run (run the train stage first)" >&2; exit 2; }
  # (the v3 weights were trained by the former scripts/train_on_gpu.py, whose options these
  # are; it drew the 240 extra phantoms at 80 slices: zoo/unet_sharp.md, "training, stage 3")
  KERAS_BACKEND=jax liverseg train --phantoms 480 --phantom-seed 1 --phantom-size 512 512 64 \
    --split-file "$stage2_split" --model unet_sharp \
    --init "$run/checkpoints/best.weights.h5" --loss dice_ce --liver-fraction 0.4 \
    --tumor-fraction 0.4 --seed 3 --minutes 6 --batch-size 32 --lr 1e-3 --workers 14 \
    -o "$gpu_run"
fi

# V4_PHANTOMS / V4_REPLAY / V4_MINUTES shorten it (a dry run); V4_INIT= other start weights
# (research/unet_sharp/candidates/v7mix-last.weights.h5, say); V4_LIVER_FRACTION and
# V4_TUMOR_FRACTION other slice shares (v7mix's: 0.5 and 0.15); V4_COARSE=P reads a share P
# of the slices coarse (liverseg train --coarse; default 0)
if [[ $stage == v4 ]]; then
  # generator-1.1.0 replay (v4mix's lesson): stage 2's first V4_REPLAY training cases,
  # written to disk as volume-1000 and up by 14 processes, read by --data beside the
  # generator-2.0 phantoms drawn in memory
  read -r -a replay < <(split_ids "$stage2_split" train 0 "${V4_REPLAY:-192}")
  draw_11() { DRAW_PROCESSES=14 draw "$gen" 1.1.0 data/phantoms11-replay 1 1000 "${replay[@]}"; }
  with_generator_11 draw_11
  KERAS_BACKEND=jax liverseg train --data data/phantoms11-replay \
    --phantoms "${V4_PHANTOMS:-480}" --phantom-seed 5 \
    --phantom-size 512 512 64 --model unet_sharp --init "${V4_INIT:-zoo:unet_sharp}" \
    --loss dice_ce --liver-fraction "${V4_LIVER_FRACTION:-0.4}" \
    --tumor-fraction "${V4_TUMOR_FRACTION:-0.4}" --seed 5 --minutes "${V4_MINUTES:-8}" \
    --coarse "${V4_COARSE:-0}" \
    --batch-size 32 --lr 1e-3 --workers 14 -o runs/unet_sharp-v4
fi

if [[ $stage == v4cpu ]]; then
  get_v3_weights
  KERAS_BACKEND=tensorflow liverseg train --phantoms 120 --phantom-seed 5 \
    --phantom-size 512 512 64 --model unet_sharp --init "$v3_weights" --loss dice_ce \
    --liver-fraction 0.4 --tumor-fraction 0.4 --seed 5 --minutes 75 --batch-size 16 \
    --lr 3e-4 --steps-per-epoch 150 --mixed-precision --workers 2 -o runs/unet_sharp-v4cpu
fi

# mix_folder DATA SET...: stage 2's first 60 training cases drawn with generator 1.1.0 (seed
# 1) into data/phantoms11-replay60 as volume-1000 and up, linked with the cases of each
# data/SET into the --data folder data/DATA
mix_folder() {
  local data=$1
  shift
  read -r -a replay < <(split_ids "$stage2_split" train 0 60)
  draw_11() { draw "$gen" 1.1.0 data/phantoms11-replay60 1 1000 "${replay[@]}"; }
  with_generator_11 draw_11
  rm -rf "data/$data" && mkdir -p "data/$data"
  for set in "$@" phantoms11-replay60; do
    for f in "data/$set"/*-*.nii.gz; do ln -s "../$set/$(basename "$f")" "data/$data/"; done
  done
}
# mix_train DATA INIT MINUTES RUN [LIVER TUMOR]: v4mix's, v5mix's, v6mix's and v7mix's
# fine-tuning, drawing the shares LIVER and TUMOR (default 0.4 and 0.4) of its slices from
# slices with liver and with tumor; MIX_STEPS=N budgets N steps in place of MINUTES (a
# run's step count replayed on a slower host: the cosine then runs over the steps);
# MIX_TRAIN_ARGS adds liverseg train options (v11mix: --coarse 0.25)
mix_train() {
  local budget=(--minutes "$3") extra=()
  [[ -z ${MIX_STEPS:-} ]] || budget=(--steps "$MIX_STEPS")
  read -r -a extra <<< "${MIX_TRAIN_ARGS:-}"
  KERAS_BACKEND=tensorflow liverseg train --data "data/$1" --model unet_sharp --init "$2" \
    --loss dice_ce --liver-fraction "${5:-0.4}" --tumor-fraction "${6:-0.4}" --seed 5 \
    "${budget[@]}" ${extra[@]+"${extra[@]}"} \
    --batch-size 16 --lr 3e-4 --steps-per-epoch 150 --mixed-precision --workers 2 -o "$4"
}

# draw_v6_sets [ROOT VERSION TAG]: v6mix's (and v7mix's) cases of generator VERSION (2.2.0;
# under path ROOT, "" = this checkout): the 120 of seed 5 into data/phantomsTAG-train120 and 40
# of one large heterogeneous mass each (seed 6) into data/phantomsTAG-mass40 as volume-2000
# and up (TAG 22; v8mix draws the same cases with generator 2.3.0 as TAG 23)
draw_v6_sets() {
  local root=${1:-} version=${2:-2.2.0} tag=${3:-22}
  draw "$root" "$version" "data/phantoms$tag-train120" 5 0 $(seq 0 119)
  DRAW_OPTIONS='{"n_lesions": 1, "lesion_kinds": ["heterogeneous"]}' \
    draw "$root" "$version" "data/phantoms$tag-mass40" 6 2000 $(seq 0 39)
}
# mix_stage RUN VERSION TAG INIT MINUTES [LIVER TUMOR]: v6mix's cases drawn with generator
# VERSION (the package under $gen when set, else this checkout's) as TAG beside the replayed
# generator-1.1.0 cases in data/RUN, and INIT fine-tuned on them for MINUTES with the slice
# shares LIVER and TUMOR (default 0.4 and 0.4) into runs/unet_sharp-RUN; the last weights
# are then copied to candidates/RUN-last.weights.h5, which git tracks (runs/ and data/ are
# ignored and do not outlive the machine: v10mix's first run was lost with them)
mix_stage() {
  draw_v6_sets "${gen:-}" "$2" "$3"
  mix_folder "$1" "phantoms$3-train120" "phantoms$3-mass40"
  mix_train "$1" "$4" "$5" "runs/unet_sharp-$1" "${6:-}" "${7:-}"
  cp "runs/unet_sharp-$1/checkpoints/last.weights.h5" \
    "research/unet_sharp/candidates/$1-last.weights.h5"
  sha256sum "research/unet_sharp/candidates/$1-last.weights.h5"
}
# generator 2.2.0 (commit 8d86d47, the last before 2.3.0's fluid-filled loop)
with_generator_22() { with_generator 8d86d47 "" "$@"; }
# generator 2.3.0 (commit c0fea68, the last before 2.4.0's hilar fat junction)
with_generator_23() { with_generator c0fea68 "" "$@"; }

if [[ $stage == v4mix ]]; then  # generator 2.0.0's 120 cases, from a worktree of 0431ffb
  draw_20() { draw "$gen" 2.0.0 data/phantoms2-train120 5 0 $(seq 0 119); }
  with_generator_20 draw_20
  mix_folder v4mix phantoms2-train120
  get_v3_weights
  mix_train v4mix "$v3_weights" "${V4MIX_MINUTES:-70}" runs/unet_sharp-v4mix
fi

if [[ $stage == v5mix ]]; then
  # v4mix again, from version 4, with generator 2.1 (the periportal fat sheath) in place of
  # 2.0: the same 120 cases (seed 5; only the sheath and lesion sites differ) beside the same
  # 60 generator-1.1.0 cases, so the run's split is v4mix's
  draw_21() { draw "$gen" 2.1.0 data/phantoms21-train120 5 0 $(seq 0 119); }
  with_generator_21 draw_21
  mix_folder v5mix phantoms21-train120
  mix_train v5mix "${V5_INIT:-zoo:unet_sharp}" "${V5MIX_MINUTES:-50}" runs/unet_sharp-v5mix
fi

if [[ $stage == v6mix ]]; then
  # v5mix again, from version 4, with generator 2.2 (a large mass under the capsule bulges
  # out of the liver): the same 120 cases (seed 5; only the bulges differ from 2.1's), 40
  # cases of one large heterogeneous mass each (seed 6, volume-2000 and up) and the same 60
  # generator-1.1.0 cases
  with_generator_22 mix_stage v6mix 2.2.0 22 "${V6_INIT:-zoo:unet_sharp}" "${V6MIX_MINUTES:-55}"
fi

if [[ $stage == v7mix ]]; then
  # v6mix's data and split, from its last weights (candidates/, SHA-256 checked), drawing
  # slices as liverseg train does by default (50 % with liver, 15 % with tumor) instead of
  # 40 % / 40 %: the tumor prior of the sampled slices falls towards a real scan's, where
  # most liver slices hold no tumor
  v6_last=research/unet_sharp/candidates/v6mix-last.weights.h5
  check_sha256 "$v6_last" 2664319e27cec6f0090518d44066f390b597ef4741874b61f9ddff86ef7b5a26
  with_generator_22 mix_stage v7mix 2.2.0 22 "${V7_INIT:-$v6_last}" "${V7MIX_MINUTES:-50}" 0.5 0.15
fi

if [[ $stage == v8mix ]]; then
  # v7mix again on generator 2.3.0: the same cases (seeds 5 and 6) with a fluid-filled loop
  # against the liver in 60 % of them and coarse reconstruction to 9 mm, beside the same 60
  # generator-1.1.0 cases, from v7mix's last weights, with its slice shares
  v7_last=research/unet_sharp/candidates/v7mix-last.weights.h5
  check_sha256 "$v7_last" 9b2b7ae491243f79d263d4d96429b0fbd7fc16db8a918fbe56b3df7118697dd3
  with_generator_23 mix_stage v8mix 2.3.0 23 "${V8_INIT:-$v7_last}" "${V8MIX_MINUTES:-50}" 0.5 0.15
fi

if [[ $stage == v9mix ]]; then
  # v8mix again on generator 2.4.0: the same cases with the hilar fat junction, from v8mix's
  # last weights, with its slice shares
  v8_last=research/unet_sharp/candidates/v8mix-last.weights.h5
  check_sha256 "$v8_last" eb8e3235c692ae420892332b181d1664ab08cbf16609419d7e18e5ec40697e77
  mix_stage v9mix 2.4.0 24 "${V9_INIT:-$v8_last}" "${V9MIX_MINUTES:-50}" 0.5 0.15
fi

if [[ $stage == v10mix ]]; then
  # v9mix's data and split, from its last weights, with a 30 % tumor share (v9mix: 15 %)
  v9_last=research/unet_sharp/candidates/v9mix-last.weights.h5
  check_sha256 "$v9_last" ff9f98a4069f087117ce7ddc273449871af38f3a498985a7da2cee3867fc609c
  mix_stage v10mix 2.4.0 24 "${V10_INIT:-$v9_last}" "${V10MIX_MINUTES:-50}" 0.5 0.3
fi

if [[ $stage == v11mix ]]; then
  # v9mix's recipe again from its last weights, a quarter of the slices read coarse
  v9_last=research/unet_sharp/candidates/v9mix-last.weights.h5
  check_sha256 "$v9_last" ff9f98a4069f087117ce7ddc273449871af38f3a498985a7da2cee3867fc609c
  MIX_STEPS=${V11MIX_STEPS:-750} MIX_TRAIN_ARGS="--coarse ${V11_COARSE:-0.25}" \
    mix_stage v11mix 2.4.0 24 "${V11_INIT:-$v9_last}" 0 0.5 0.15
fi

if [[ $stage == v4ship ]]; then  # the default weights version 4, bit for bit
  get_v3_weights
  python research/unet_sharp/interpolate_weights.py "$v3_weights" \
    "${V4MIX_LAST:-research/unet_sharp/candidates/v4mix2-last.weights.h5}" --alpha 0.5 \
    -o runs/unet_sharp-v4ship
  sha256sum runs/unet_sharp-v4ship/alpha-0.5.weights.h5
fi

if [[ $stage == v5ship ]]; then  # the default weights version 5, bit for bit
  weights_from_git "$v4_weights" 7b69bcf \
    fd0b2bca416177700a75ed8a855e0c787a660d52ce24afd0839ee2d57e747ec5
  python research/unet_sharp/interpolate_weights.py "$v4_weights" \
    "${V8MIX_LAST:-research/unet_sharp/candidates/v8mix-last.weights.h5}" --alpha 0.5 \
    -o runs/unet_sharp-v5ship
  sha256sum runs/unet_sharp-v5ship/alpha-0.5.weights.h5
fi

if [[ $stage == val11 ]]; then
  # the 28 validation cases of `validate` (cases 21-48 of stage 2's split, seed 1), drawn with
  # generator 1.1.0 as the shipped weights' validation saw them, into data/phantoms11-val28
  # under their own ids: lesion_prob_sweep.py's default cases, for comparing candidate
  # weights on generator 1.1.0 without the held-out set (the replayed cases of v4mix's own
  # validation were the shipped weights' training cases). VAL=48: all 48 validation cases
  # into data/phantoms11-val48 (lesion_prob_sweep.py ... --first 0)
  case ${VAL:-28} in
    28) first=20 ;;
    48) first=0 ;;
    *) echo "Error: VAL must be 28 or 48, got ${VAL}" >&2; exit 2 ;;
  esac
  read -r -a cases < <(split_ids "$stage2_split" validation "$first" 48)
  draw_11() { draw "$gen" 1.1.0 "data/phantoms11-val${VAL:-28}" 1 0 "${cases[@]}"; }
  with_generator_11 draw_11
fi

if [[ $stage == evaluate || $stage == stepb || $stage == all ]]; then
  # write_test VERSION OUT SEED: 10 cases of 512x512x80 drawn by the generator under $gen
  write_test() {
    python3 - "$gen" "$@" <<'PY'
import sys
root, version, out, seed = sys.argv[1:]
sys.path.insert(0, root)
from keras_liverseg.phantom import GENERATOR_VERSION, write_lits_dataset
assert GENERATOR_VERSION == version, GENERATOR_VERSION
write_lits_dataset(out, 10, int(seed), (512, 512, 80))
PY
  }
  # the held-out sets: generator 1.1.0 (seed 2, as first scored), 2.0.0 and 2.1.0 (seed 4:
  # the same cases, 2.1.0 with the periportal fat sheath and its lesions elsewhere)
  [[ -f data/phantoms-test/phantoms.json ]] ||
    with_generator_11 write_test 1.1.0 data/phantoms-test 2
  [[ -f data/phantoms2-test/phantoms.json ]] ||
    with_generator_20 write_test 2.0.0 data/phantoms2-test 4
  [[ -f data/phantoms21-test/phantoms.json ]] ||
    with_generator_21 write_test 2.1.0 data/phantoms21-test 4
  for set in phantoms-test phantoms2-test phantoms21-test; do
    mkdir -p "data/$set-volumes"
    for f in "data/$set"/volume-*.nii.gz; do
      ln -sf "../$set/$(basename "$f")" "data/$set-volumes/"
    done
    score "data/$set-volumes" "data/$set-pred$tag" "data/$set" "data/$set-metrics$tag.json"
  done
  [[ ! -d ../shared/data ]] || predict_real "data/real$tag"
fi

if [[ $stage == validate ]]; then
  split=${SPLIT:-$stage2_split}
  [[ -f $split ]] || { echo "Error: no split file $split (run the train stage or set SPLIT=)" >&2; exit 2; }
  case ${VAL:-28} in
    28) set=val28; first=20; last=48 ;;
    20) set=val20; first=0; last=20 ;;
    *) echo "Error: VAL must be 28 or 20, got ${VAL}" >&2; exit 2 ;;
  esac
  rm -rf "data/$set-volumes" "data/$set-labels" "data/$set-pred$tag"
  mkdir -p "data/$set-volumes" "data/$set-labels"
  read -r -a cases < <(split_ids "$split" validation "$first" "$last")
  # only the cases this set reads, each as `liverseg sample-data -o data/phantoms-train-240
  # --cases 240 --seed 1 --size 512 512 64` wrote it with generator 1.1.0 (case i depends on
  # the seed and i alone)
  draw_val() { draw "$gen" 1.1.0 data/phantoms-train-240 1 0 "${cases[@]}"; }
  with_generator_11 draw_val
  for n in "${cases[@]}"; do
    ln -s "../phantoms-train-240/volume-$n.nii.gz" "data/$set-volumes/"
    ln -s "../phantoms-train-240/segmentation-$n.nii.gz" "data/$set-labels/"
  done
  score "data/$set-volumes" "data/$set-pred$tag" "data/$set-labels" \
    "data/$set-metrics$tag.json"
fi

if [[ $stage == stepa ]]; then
  name=${CANDIDATE:?CANDIDATE=NAME names data/stepA-NAME}
  out=data/stepA-$name
  # the split's validation cases of generator 2.x: seed 5 under 1000, the one-mass cases
  # (seed 6) from 2000; the replayed generator-1.1.0 cases (1000-1999) are left out
  read -r -a val < <(split_ids "${SPLIT:-research/unet_sharp/splits/v7mix.json}" validation 0 1000)
  ids=() plain=() mass=()  # mass: the cases of seed 6, numbered from 0 as drawn
  for n in "${val[@]}"; do
    if ((n < 1000)); then plain+=("$n"); elif ((n >= 2000)); then mass+=($((n - 2000))); fi
    ((n >= 1000 && n < 2000)) || ids+=("$n")
  done
  draw_val22() {
    draw "$gen" 2.2.0 data/phantoms22-train120 5 0 "${plain[@]}"
    DRAW_OPTIONS='{"n_lesions": 1, "lesion_kinds": ["heterogeneous"]}' \
      draw "$gen" 2.2.0 data/phantoms22-mass40 6 2000 "${mass[@]}"
  }
  with_generator_22 draw_val22
  rm -rf data/val22 && mkdir -p data/val22 "$out"
  for n in "${ids[@]}"; do
    set=phantoms22-train120
    ((n < 2000)) || set=phantoms22-mass40
    ln -s "../$set/volume-$n.nii.gz" "../$set/segmentation-$n.nii.gz" data/val22/
  done
  python research/unet_sharp/lesion_prob_sweep.py data/val22 "${ids[@]}" --weights "$weights" \
    "${post_args[@]}" --json "$out/validation.json" | tee "$out/validation.txt"
  predict_args=("${post_args[@]}")
  predict_real "$out/real"
  python research/unet_sharp/real_examples.py "$out/real" | tee "$out/real.json"
fi

if [[ $stage == stepb ]]; then
  python research/unet_sharp/visible_tumor_dice.py "data/phantoms2-test-pred$tag" \
    data/phantoms2-test | tee "data/stepB$tag-visible.txt"
  python research/unet_sharp/field_of_view.py --phantoms 0 --pixel-spacing 2.1 --trace \
    --weights "$weights" "${post_args[@]}" | tee "data/stepB$tag-field-of-view.txt"
  python research/unet_sharp/rule_check.py stepb "data/phantoms-test-metrics$tag.json"
fi
