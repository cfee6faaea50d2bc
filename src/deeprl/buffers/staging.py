"""One host-to-device copy per replay batch.

A batch is five or six arrays (observations, actions, rewards, next observations, discounts, and
the importance weights of prioritized replay). Sent one by one, each is a separate pinned
allocation and copy, and three of them are a few hundred bytes: the GPU waits on launches, not
bandwidth. `BatchStaging` packs the arrays into one preallocated pinned host buffer, sends it in a
single non-blocking copy, and hands back typed views of the device copy.

Two host buffers take turns: a buffer is refilled only after the copy out of it has finished (its
CUDA event), so the next batch can be packed while the last one is still in flight.
"""

import numpy as np
import torch

ALIGN = 64  # bytes: every field starts aligned for any dtype (and for vector loads)


def layout(arrays: list[np.ndarray]) -> tuple[list[int], int]:
    """Byte offset of each array in the packed buffer, and the buffer's size."""
    offsets, end = [], 0
    for array in arrays:
        offsets.append(end)
        end += -(-array.nbytes // ALIGN) * ALIGN
    return offsets, end


class BatchStaging:
    def __init__(self, device: torch.device, pin: bool | None = None):
        self.device = torch.device(device)
        # Pinned (page-locked) host memory lets the copy run asynchronously; it needs CUDA.
        self.pin = self.device.type == "cuda" if pin is None else pin
        self.hosts: list[torch.Tensor | None] = [None, None]
        self.events: list = [None, None]
        self.turn = 0

    def _host(self, nbytes: int) -> torch.Tensor:
        host = self.hosts[self.turn]
        if self.events[self.turn] is not None:
            self.events[self.turn].synchronize()  # the copy out of it has finished
        if host is None or host.numel() < nbytes:
            host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=self.pin)
            self.hosts[self.turn] = host
        return host

    def send(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        """The arrays on the device (one copy); views of one buffer, valid until the next send
        but one. On the CPU (no copy needed) the views are of the host buffer itself."""
        offsets, nbytes = layout(arrays)
        host = self._host(nbytes)
        packed = host[:nbytes].numpy()
        for array, offset in zip(arrays, offsets, strict=True):
            view = packed[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(view, array)
        if self.device.type == "cuda":
            device_bytes = host[:nbytes].to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.events[self.turn] = event
        else:
            device_bytes = host[:nbytes]
        self.turn ^= 1
        return [device_bytes[offset:offset + array.nbytes].view(torch.from_numpy(array[:0]).dtype)
                .view(array.shape) for array, offset in zip(arrays, offsets, strict=True)]
