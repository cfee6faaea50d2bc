"""deeprl's Ray launcher (`hydra.launcher._target_` in conf/hydra/launcher/ray_local.yaml and
ray_cluster.yaml; Hydra only takes launchers from the `hydra_plugins` package): Hydra's Ray
launcher, with the sweep's stop relay kept in place.

`ray.init` puts its own SIGTERM handlers in the sweep's process: Python's (`sys.exit(15)`) and its
C++ core's, which prints a stack report and ends the process at once. A SIGTERM to a Ray sweep
(`kill <pid>`, a process manager) ended it and, with it, Ray and every job, none with a
checkpoint. Once Ray is up, the relay (`deeprl.sweep_stop.stops_relayed`) is put back: the jobs
checkpoint and stop as on a Ctrl-C.
"""

from collections.abc import Sequence
from typing import Any

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as HydraRayLauncher
except ImportError:  # without the `sweep` extra there is no Ray launcher, and no warning at each start
    HydraRayLauncher = object


class RayLauncher(HydraRayLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        # here, not at import: Hydra imports every plugin module at each start, and this one imports Ray
        from hydra_plugins.hydra_ray_launcher import _core

        from deeprl.sweep_stop import relay_again

        start_ray = _core.start_ray

        def start_ray_then_relay(init_cfg) -> None:
            start_ray(init_cfg)
            relay_again()

        _core.start_ray = start_ray_then_relay  # Hydra's launch starts Ray, then waits for the jobs
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            _core.start_ray = start_ray
