"""Every CUDA source of the optim package: the multi-tensor updates of optim/_gpu.py, the fused twins of
SGD's and Adam's per-parameter ``_update`` (optim/sgd.py, adam.py).

One launch updates up to SLOTS parameters. Slot s is its own kernel arguments (``param<s>``,
``grad<s>``, its state buffers, ``size<s>`` and its per-parameter scalars), so no table of pointers has
to be copied to the device; an unused slot has size 0 (its pointers may be any array). The kernel's
grid-stride loop (``MQ_FOR_EACH``) runs over the items of all slots together; an item's slot is the first
whose running total of sizes (``end``) lies beyond it, and as a thread's items only grow, its slot only
moves forward. Each item is read and written by one thread: the update is elementwise, in the order of
operations of the per-parameter NumPy code. Sizes and flags are ``long long``, floats are ``T`` (float
or double, typedef'd by backend.raw_kernel; backend.kernel_arguments). tests/optim/test_multi_tensor.py
compiles every source with NVRTC and runs it on the CPU (as C++, one thread) against the per-parameter
path. Importing this needs no CuPy.
"""

from __future__ import annotations

SLOTS = 8  # parameters per launch

PRELUDE = """
#define MQ_FOR_EACH(i, items) \\
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (items); \\
       i += (long long)blockDim.x * gridDim.x)
"""


def _slot_arguments(fields: list[tuple[str, str]]) -> str:
    """The kernel arguments of every slot: ``T* param0, const T* grad0, ..., T* param1, ...``."""
    return ",\n    ".join(", ".join(f"{c_type} {name}{slot}" for c_type, name in fields) for slot in range(SLOTS))


def _slot_arrays(fields: list[tuple[str, str]]) -> str:
    """Each field's SLOTS arguments as one local array (``T* const param[SLOTS] = {param0, ...}``)."""
    return "".join(
        f"  {c_type} const {name}[{SLOTS}] = {{{', '.join(f'{name}{slot}' for slot in range(SLOTS))}}};\n"
        for c_type, name in fields
    )


def _multi_tensor_kernel(name: str, fields: list[tuple[str, str]], options: str, update: str) -> str:
    """A kernel over SLOTS slots of `fields` (plus ``long long size``) and the group's `options`, whose
    body `update` changes item ``k`` of slot ``slot``."""
    fields = [*fields, ("long long", "size")]
    return PRELUDE + f"""
extern "C" __global__ void {name}(
    {_slot_arguments(fields)},
    {options}) {{
{_slot_arrays(fields)}  long long end[{SLOTS}];
  end[0] = size[0];
  for (int s = 1; s < {SLOTS}; ++s) end[s] = end[s - 1] + size[s];
  int slot = 0;
  MQ_FOR_EACH(item, end[{SLOTS} - 1]) {{
    while (item >= end[slot]) ++slot;
    const long long k = item - (end[slot] - size[slot]);
{update}  }}
}}
"""


# SGD (optim/sgd.py), with b the momentum buffer (first<s>: b ← g, else b ← momentum·b + (1 − dampening)·g):
#   g ← g + weight_decay·θ;  d ← g + momentum·b (nesterov), b (momentum ≠ 0) or g;  θ ← θ − lr·d.
# Without momentum the buffers are never touched.
SGD = _multi_tensor_kernel(
    "minigrad_q_sgd",
    [("T*", "param"), ("const T*", "grad"), ("T*", "buffer"), ("long long", "first")],
    "T lr, T weight_decay, T momentum, T one_minus_dampening, long long nesterov",
    """    const T theta = param[slot][k];
    T g = grad[slot][k];
    if (weight_decay != (T)0) g = theta * weight_decay + g;
    T direction = g;
    if (momentum != (T)0) {
      const T b = first[slot] ? g : buffer[slot][k] * momentum + g * one_minus_dampening;
      buffer[slot][k] = b;
      direction = nesterov ? b * momentum + g : b;
    }
    param[slot][k] = theta - direction * lr;
""",
)

# Adam and AdamW (optim/adam.py), with m, v the moment estimates and per slot the step size lr/(1 − β₁ᵗ)
# and √(1 − β₂ᵗ) (step counts differ between parameters):
#   g ← g + weight_decay·θ (Adam)   or   θ ← θ·(1 − lr·weight_decay) (AdamW, decay_factor);
#   m ← m + (1 − β₁)(g − m);  v ← β₂·v + (1 − β₂)·g²;  θ ← θ − step_size · m / (√v / √(1 − β₂ᵗ) + ε).
ADAM = _multi_tensor_kernel(
    "minigrad_q_adam",
    [("T*", "param"), ("const T*", "grad"), ("T*", "exp_avg"), ("T*", "exp_avg_sq"), ("T", "step_size"),
     ("T", "bias_correction2_sqrt")],
    "T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T weight_decay, T decay_factor, long long decoupled",
    """    T theta = param[slot][k];
    T g = grad[slot][k];
    if (weight_decay != (T)0) {
      if (decoupled) theta *= decay_factor;
      else g = theta * weight_decay + g;
    }
    const T m = exp_avg[slot][k] + (g - exp_avg[slot][k]) * one_minus_beta1;
    const T v = exp_avg_sq[slot][k] * beta2 + g * g * one_minus_beta2;
    exp_avg[slot][k] = m;
    exp_avg_sq[slot][k] = v;
    param[slot][k] = theta - m / (sqrt(v) / bias_correction2_sqrt[slot] + eps) * step_size[slot];
""",
)

KERNELS = {
    "minigrad_q_sgd": SGD,
    "minigrad_q_adam": ADAM,
}  # name -> source: every kernel, for optim/_gpu.py and the NVRTC compile test
