"""JAX/Flax backend: cuDNN-layout cells written in Flax, jit-compiled training with optax.

Flax API: **linen**, not nnx. Training is a pure function of a parameter pytree under
`jax.jit`, `lax.scan`/`fori_loop`, `jax.value_and_grad` and optax, which is exactly
what linen's `init`/`apply` give; its nested parameter dict, flattened with ".", *is*
the canonical layout of `common.params`, with no translation table. nnx would need
`nnx.split`/`nnx.merge` (or `nnx.jit`'s graph traversal) around every call and an
`nnx.Rngs` threaded through the loops, to compile the same program.

Layout:
- `cells`: the linen modules (canonical parameters; stacked, bidirectional, one-hot or
  embedding input, dropout between layers, dense output) and Flax's own initialisation.
- `recurrence`: one direction of one layer: the input projection of all time steps as
  one matmul, `lax.scan` over time, and a hand-written backward pass (`custom_vjp`).
- `wavefront`: a whole unidirectional stack as one scan (the `wavefront` mode), reusing
  `recurrence`'s cell steps, with its own hand-written backward pass.
- `steps`: the jitted pure functions (training and evaluation over a chunk of batches,
  gradients, one-token prediction) and the optimizer (exact min(1, clip/norm)
  clipping, then `optax.sgd` / `optax.adam`).
- `model`: `JaxModel`, the `LanguageModel` contract; `backend`: `JaxBackend`.
- `_xla_env`: XLA's thread count (`PJRT_NPROC`) and flags, set from RNNBENCH_THREADS
  *before* JAX is imported, because XLA reads them once.

Modes (`backend.MODES`): `wavefront` (default), `scan` and `scan-unroll`. `scan` runs
each layer as its own `lax.scan(unroll=1)`, `scan-unroll` the same with unroll 5.
Measured on this 2-core CPU (tokens/s, steady state): d2l-deep-lstm (LSTM 2x256, batch
32, 35 steps) unroll 1: ~41k, 2: ~36k, 4: ~35k, 5: ~46k, 7: ~43k, 35: ~39k (and 13 s to
compile); d2l-deep-gru (GRU 2x32, batch 1024, 32 steps) unroll 1: ~866k, 2: ~560k, 4:
~480k, 5: ~553k, 8: ~376k; jay-gru the same for 1 and 5. So unrolling helps only large
cells with small batches.

`wavefront` runs a unidirectional stack of >= 2 layers without dropout as one scan over
T+L-1 steps, layer l at time s - l in step s (`wavefront`); other stacks run exactly as
in `scan`. Interleaved A/B against `scan` (`python -m benchmarks.interleave --backend
jax --modes scan,wavefront`, two runs each, medians, tok/s): d2l-deep-lstm 37,780 ->
48,854 and 36,701 -> 47,815 (+29%); d2l-deep-gru 779,573 -> 967,636 and 825,714 ->
1,000,841 (+21-24%); quick-gru (GRU 2x256, batch 32) 56,502 -> 59,845 and 61,354 ->
61,434 (+0-6%). Faster or equal everywhere, so it is the default. It uses unroll 1:
unrolling its scan did not help (d2l-deep-lstm unroll 2: -2%, 5: -17%).

Compilation: shapes are static and the batch count is traced, so after the first
epoch nothing recompiles; a smaller last batch (`windows` sampling) compiles once
more. Float64 specs run with 64-bit types enabled for that model only.
"""

from backends.jax_flax import _xla_env

_xla_env.configure_from_env()  # before the first `import jax` anywhere below

from backends.jax_flax.backend import BACKEND  # noqa: E402

__all__ = ["BACKEND"]
