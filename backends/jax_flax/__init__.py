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
- `model`: `JaxBase` (what every mode shares: device context, canonical parameters,
  the optimizer's injected learning rate) and `JaxModel` (the tuned modes);
  `backend`: `JaxBackend` and the `MODES` table (track and description per mode).
- `library`, `library_model`: the out-of-box `flax` mode: Flax's own cells in `nn.RNN`,
  optax's clipping and optimizers, one jitted step per batch; the canonical parameters
  map exactly into Flax's merged biases inside the step.
- `_environment`: XLA's thread count (`PJRT_NPROC`) and flags, set from RNNBENCH_THREADS
  *before* JAX is imported, because XLA reads them once.

Modes (`backend.MODES`): the tuned `wavefront` (default), `scan` and `scan-unroll`, and
the out-of-box `flax` (what a Flax user writes from its documentation). `scan` runs
each layer as its own `lax.scan(unroll=1)`, `scan-unroll` the same with unroll 5
(unrolling helps only large cells with small batches: docs/performance.md).

`wavefront` runs a unidirectional stack of >= 2 layers without dropout as one scan over
T+L-1 steps, layer l at time s - l in step s (`wavefront`); other stacks run exactly as
in `scan`. Measured faster than `scan` or equal on every preset tried, so it is the
default; it uses unroll 1 (docs/performance.md).

Compilation: shapes are static and the batch count is traced, so after the first
epoch nothing recompiles; a smaller last batch (`windows` sampling) compiles once
more. Float64 specs run with 64-bit types enabled for that model only.
"""

from backends.jax_flax import _environment

_environment.configure_from_env()  # before the first `import jax` anywhere below

from backends.jax_flax.backend import BACKEND  # noqa: E402

__all__ = ["BACKEND"]
