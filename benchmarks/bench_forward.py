"""The default model's forward pass against this host's matmul peak (issue 24, part 4).

In one process on one host, prints:

* the matmul peak: the best GFLOP/s of a 4096x4096 float32 (and bfloat16) matmul through
  the Keras backend (TensorFlow by default), 2 n^3 FLOPs each;
* the FLOPs of one slice through the model, counted from its layers (2 multiply-adds per
  weight use of every convolution and dense layer, from the layers' output shapes: the
  element-wise ops, a few per cent, are not counted);
* the model's forward time per slice (``predict_on_batch``, best of ``--repeats``) at each
  batch size, with BatchNormalization as Keras runs it, folded into the convolutions
  (:func:`keras_liverseg.models.fold_batch_norm`), folded with the convolutions of
  concatenations split (:class:`keras_liverseg.models.folding.ConcatConv2D`), split with
  each up-sampled part projected before its up-sampling (``split+proj``: the float32 graph
  ``liverseg predict`` runs), folded in bfloat16 as ``liverseg predict`` builds it
  (:func:`keras_liverseg.inference.precision.at_precision`), and with ``--onnx`` the
  float32 graph of ``liverseg predict`` exported and run by ONNX Runtime (``--runtime
  onnx``); for each, the FLOPs it computes (the projection computes fewer than the model's
  convolutions), its GFLOP/s and their share of the matmul peak of the same precision, and
  its effective GFLOP/s (the model's FLOPs over its time: the speed-up);
* with ``--per-op``, the share of each TensorFlow op type in a traced run of the folded
  float32 and bfloat16 graphs (where the time goes besides the convolutions).

Usage::

    python benchmarks/bench_forward.py                      # unet_sharp at 192x192
    python benchmarks/bench_forward.py --model unet_sharp_fast --batch 1 4 16
    python benchmarks/bench_forward.py --batch 4 --per-op
    python benchmarks/bench_forward.py --batch 4 --threads 2 1     # intra-op, inter-op
    python benchmarks/bench_forward.py --batch 4 16 --onnx         # also ONNX Runtime

The CPU's name and flags (AVX-512, AMX, native bf16) are printed first: every figure is a
ratio taken on this host in this run; compare hosts by the ratios only.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def cpu_facts() -> dict:
    """The CPU's model name, core count and the flags that decide its matmul speed."""
    from keras_liverseg.inference.precision import cpu_flags, cpu_name

    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    flags = cpu_flags()
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def matmul_peak(dtype: str, n: int = 4096, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n matmul in ``dtype`` through the Keras backend."""
    import keras

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((n, n)).astype("float32"), dtype)
    b = keras.ops.convert_to_tensor(rng.standard_normal((n, n)).astype("float32"), dtype)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - tick)
    return 2.0 * n**3 / best / 1e9


def forward_flops(model) -> float:
    """FLOPs of one sample: 2 x the multiply-adds of every convolution and dense layer (a
    :class:`~keras_liverseg.models.folding.ConcatConv2D`'s as it computes them)."""
    import keras

    from keras_liverseg.models.folding import ConcatConv2D

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, ConcatConv2D):
            total += 2.0 * layer.multiply_adds()
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.kernel.shape  # (kh, kw, cin, multiplier)
            out = layer.output.shape
            total += 2.0 * np.prod(out[1:]) * kernel[0] * kernel[1]
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D
                        | keras.layers.Conv2DTranspose):
            kernel = layer.kernel.shape
            out = layer.output.shape
            spatial = np.prod(out[1:-1])
            if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel
                spatial = np.prod(layer.input.shape[1:-1])
            total += 2.0 * spatial * np.prod(kernel)
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * np.prod(layer.kernel.shape)
    return float(total)


def _without_projection(layer, config: dict):
    """A layer rebuilt as it is, but a ``ConcatConv2D`` convolving its up-sampled parts at
    full size (``project_first=False``): the split graph before the projection."""
    if "project_first" in config:
        config = {**config, "project_first": False}
    return layer.__class__.from_config(config)


def time_forward(model, batch: int, repeats: int, slice_shape=None) -> float:
    """Best seconds per slice of ``model.predict_on_batch`` at ``batch`` slices
    (``slice_shape``: ``(H, W, C)``, default the Keras model's input)."""
    shape = (batch, *(slice_shape or model.inputs[0].shape[1:]))
    x = np.random.default_rng(1).uniform(-300, 400, shape).astype("float32")
    model.predict_on_batch(x)  # trace
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        model.predict_on_batch(x)
        best = min(best, time.perf_counter() - tick)
    return best / batch


def per_op(model, batch: int) -> dict[str, float]:
    """Seconds of each TensorFlow op type in one traced run of ``model``'s graph
    (frozen, after TensorFlow's graph optimisations: a convolution fused with its bias and
    ReLU is one node, named after its ReLU). Ops overlap across threads, so the seconds add
    up to more than the run's wall time; their shares are what to read."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((batch, *model.inputs[0].shape[1:]), tf.float32)
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))
    graph_def = frozen.graph.as_graph_def()
    kinds = {node.name: node.op for node in graph_def.node}
    kinds.update({node.name: "Conv2D+BiasAdd+Relu (fused)" for node in graph_def.node
                  if node.op == "Relu"})  # named after the ReLU it ends in
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    x = np.random.default_rng(1).uniform(-300, 400, spec.shape).astype("float32")
    feed, fetch = {frozen.inputs[0].name: x}, frozen.outputs[0].name
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        for _ in range(3):
            session.run(fetch, feed)
        session.run(fetch, feed, run_metadata=metadata, options=tf.compat.v1.RunOptions(
            trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
    totals: dict[str, float] = {}
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            kind = kinds.get(node.node_name.split(":")[0], "other")
            totals[kind] = totals.get(kind, 0.0) + node.all_end_rel_micros / 1e6
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--per-op", action="store_true",
                        help="also the share of each TensorFlow op type in the folded float32 "
                             "and bfloat16 graphs (TensorFlow backend)")
    parser.add_argument("--threads", type=int, nargs=2, metavar=("INTRA", "INTER"),
                        default=None, help="TensorFlow's intra- and inter-op thread counts "
                        "(default: TensorFlow's own choice)")
    parser.add_argument("--onnx", action="store_true",
                        help="also ONNX Runtime on the exported float32 graph (export extra)")
    args = parser.parse_args()

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(args.threads[1])
    import keras

    from keras_liverseg import models, zoo
    from keras_liverseg.inference.precision import at_precision, native_bfloat16
    from keras_liverseg.models.folding import copy_model, fold_batch_norm

    facts = {**cpu_facts(), "backend": keras.backend.backend(), "keras": keras.__version__,
             "native_bfloat16": native_bfloat16(), "threads": args.threads or "default"}
    print(json.dumps(facts))
    peak = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    print(f"matmul peak: float32 {peak['float32']:.0f} GFLOP/s, bfloat16 "
          f"{peak['bfloat16']:.0f} GFLOP/s")
    plain = models.inference_model(zoo.load(args.model), fold=False)
    folded = models.inference_model(zoo.load(args.model))
    flops = forward_flops(plain)
    size = "x".join(str(n) for n in plain.inputs[0].shape[1:])
    print(f"{args.model} at {size}: {flops / 1e9:.2f} GFLOP per slice (convolutions)")
    rows = []
    whole_parts = copy_model(folded, _without_projection)
    graphs = [("batch norm", plain, "float32"), ("folded", fold_batch_norm(plain), "float32"),
              ("folded+split", whole_parts, "float32"), ("split+proj", folded, "float32"),
              ("folded bf16", at_precision(plain, "bfloat16", fold=True), "bfloat16")]
    if args.onnx:
        import tempfile

        from keras_liverseg.export import export_onnx
        from keras_liverseg.inference.onnx_runtime import OnnxRunner

        path = os.path.join(tempfile.mkdtemp(), "forward.onnx")
        export_onnx(folded, path)
        graphs.append(("onnx runtime", OnnxRunner(path), "float32"))
    shape = tuple(plain.inputs[0].shape[1:])
    for batch in args.batch:
        for name, model, dtype in graphs:
            own = forward_flops(model) if isinstance(model, keras.Model) else forward_flops(folded)
            seconds = time_forward(model, batch, args.repeats, shape)
            rate = own / seconds / 1e9
            rows.append({"batch": batch, "graph": name, "s_per_slice": round(seconds, 4),
                         "gflop_per_slice": round(own / 1e9, 3), "gflops": round(rate, 1),
                         "share_of_peak": round(rate / peak[dtype], 3), "peak": dtype,
                         "effective_gflops": round(flops / seconds / 1e9, 1)})
            print(f"batch {batch:>2} {name:<12} {seconds:.4f} s/slice  {own / 1e9:5.2f} GFLOP "
                  f"{rate:6.1f} GFLOP/s  {rate / peak[dtype]:4.0%} of the {dtype} matmul peak; "
                  f"effective {flops / seconds / 1e9:6.1f} GFLOP/s", flush=True)
    if args.per_op:
        batch = max(args.batch)
        for name, model, _dtype in (graphs[1], graphs[3], graphs[4]):
            totals = per_op(model, batch)
            whole = sum(totals.values())
            print(f"op time by type, {name} graph, batch {batch}:")
            for kind, seconds in sorted(totals.items(), key=lambda item: -item[1])[:8]:
                print(f"  {kind:<30} {seconds / whole:4.0%}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({**facts, "peak_gflops": peak, "model": args.model,
                       "gflop_per_slice": flops / 1e9, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
