"""CUDA graphs: a step of fixed shapes recorded once and replayed as one launch.

On a GPU a DQN step is bound by kernel launches, not arithmetic: acting is about 14 launches and a
sync, an update about 70 kernels plus the Python that issues them. `CudaGraphed(fn)` runs `fn` eagerly
for its first `warmup` calls (on a side stream, as graph capture requires: cuBLAS workspaces,
autograd and optimizer state get created there), then records the next call into a CUDA graph and
from then on copies each call's inputs into the graph's static inputs and replays it.

What `fn` may do: tensor work on the device with shapes that never change (no `.item()`, no
`.cpu()`, no Python branch on a tensor's value); its parameters and optimizer state must stay the
same tensors (updated in place: `load_state_dict` of a module copies in place, an optimizer's does
not, so call `reset()` after loading one). An optimizer stepped inside needs `capturable=True` and
a tensor learning rate (changed with `fill_`). The outputs are copied out at every call, so a caller
may keep them while the next replay overwrites the graph's own.
"""

import torch


class CudaGraphed:
    def __init__(self, fn, warmup: int = 3):
        self.fn, self.warmup = fn, int(warmup)
        self.reset()

    def reset(self) -> None:
        """Forget the recorded graph (after the tensors it reads were replaced): warm up and record again."""
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0
        self.static_inputs: list[torch.Tensor | None] = []
        self.static_outputs: tuple[torch.Tensor, ...] = ()

    @property
    def recorded(self) -> bool:
        return self.graph is not None

    def __call__(self, *inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                outputs = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return outputs
        if self.graph is None:
            # Recording runs nothing: the replay below computes this call too.
            self.static_inputs = [None if x is None else x.clone() for x in inputs]
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_outputs = self.fn(*self.static_inputs)
        else:
            for static, x in zip(self.static_inputs, inputs, strict=True):
                if static is not None:
                    static.copy_(x, non_blocking=True)
        self.graph.replay()
        return tuple(out.clone() for out in self.static_outputs)
