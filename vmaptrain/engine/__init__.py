"""The engine: stacked-run execution and nothing else.

- `strategy`: the parsed, frozen `Strategy` (pure Python; `vmaptrain.config` parses it once);
- `seed_axis`: per-run functions lifted to stacked runs (the seed axis inside a device) and
  `conv_batching`, how a vmapped convolution is batched;
- `placement`: the seed axis over devices and processes (mesh, sharding, host transfers);
- `programs`: compiled init / step / eval / permutation programs and their cache;
- `trainer`: the group trainer, the one host training loop, with `hooks`;
- `hostmem`: the CPU host-allocator policy, applied by the entry points before JAX's CPU
  backend starts;
- `compilation_cache`: JAX's persistent compilation cache, private and split by machine, set up
  when programs are built.

Submodules load on first use, so importing the package (as `vmaptrain.config` does for
`strategy`) imports nothing else and changes nothing in the process.
"""
