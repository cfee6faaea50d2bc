"""TensorBoard events in the run dir, and the console progress bar."""

import numbers
import re
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from tqdm import tqdm

from deeprl.core.console import plural, say
from deeprl.core.errors import quiet_event_writer_failures


def progress_interval(stream) -> float:
    """Seconds between progress-bar updates: twice a second on a terminal; once a minute into a
    file or pipe (a cluster job's log), where each update is written out and none is overwritten."""
    isatty = getattr(stream, "isatty", None)
    return 0.5 if isatty is not None and isatty() else 60.0


def evaluation_bar(episodes: int, stream=None) -> tqdm:
    """The `evaluate` command's bar on a terminal (none into a file or pipe): finished episodes,
    and the steps played, since an Atari evaluation can take minutes."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return tqdm(total=episodes, unit="episode", file=stream, dynamic_ncols=True, leave=False,
                disable=not (isatty is not None and isatty()), mininterval=progress_interval(stream))


def show_evaluation(bar: tqdm, steps: int, finished: int) -> None:
    """`evaluate`'s `progress` for an `evaluation_bar`: redrawn at the bar's pace even while no
    episode ends."""
    if bar.disable:
        return
    bar.n = finished
    bar.set_postfix_str(plural(steps, "step"), refresh=False)
    redraw_at_its_pace(bar, now=finished == bar.total)


def redraw_at_its_pace(bar: tqdm, now: bool = False) -> None:
    """Redraw `bar` if its `mininterval` has passed since this last did (or `now`): for what
    changes between its updates, which tqdm redraws only on `update`."""
    clock = time.monotonic()
    if now or clock - getattr(bar, "drawn", 0.0) >= bar.mininterval:
        bar.drawn = clock
        bar.refresh()


# TensorBoard reads a run dir's event files in the order of their names,
# events.out.tfevents.<10-digit second>.<host>.<pid>.<n>, where n counts the writers a process has
# made. A resumed piece's points (and its purge of what the earlier piece logged past the
# checkpoint) count only if its file comes after the earlier pieces' files.
EVENT_FILE = re.compile(r"events\.out\.tfevents\.(\d{10})\.")
# A file more than this far in the future came from a skewed clock: waiting would not help.
LONGEST_WAIT_S = 2.0


def after_earlier_event_files(run_dir) -> None:
    """Wait, when needed, until the second a new event file is named after is later than that of
    every event file already in `run_dir`. Within one second the names compare by host, pid and
    counter, which sort as text ("…pid.10" before "…pid.9"): a run resumed in the process and the
    second that started it (a notebook, the tests) could be read before the piece it continues.
    A resume in a new process starts seconds later and never waits."""
    seconds = [int(m.group(1)) for path in Path(run_dir).glob("events.out.tfevents.*")
               if (m := EVENT_FILE.match(path.name))]
    wait = max(seconds, default=0) + 1 - time.time()
    if 0 < wait <= LONGEST_WAIT_S:
        time.sleep(wait)


class Logger:
    """`start_step` > 0 continues a run from that step (resume): TensorBoard drops whatever an
    earlier piece of the run logged after it (`purge_step`), so the x axis has no duplicate or
    backward points, and the progress bar starts there. `desc` names the run on its progress bar
    (a sweep's parallel jobs share the console).

    Scalars are held here and handed to TensorBoard's writer in batches (`flush`): at
    `FLUSH_SCALARS` pending or `FLUSH_SECONDS` after the last batch, at every checkpoint (the run
    calls `flush` first) and at the end. The writer's thread reopens the event file for every record,
    and each of those system calls is a hand-off of the interpreter lock with the training thread:
    one at a time, a run with many short episodes spent a third of its time there (docs/benchmarks.md).
    A batch is written while the training thread waits, at about 40 µs a scalar.
    """

    FLUSH_SCALARS = 256
    FLUSH_SECONDS = 2.0

    def __init__(self, run_dir, total_steps: int, progress: bool = True, start_step: int = 0,
                 desc: str | None = None):
        quiet_event_writer_failures()
        if start_step:
            after_earlier_event_files(run_dir)
        # Points at start_step itself were logged before the checkpoint was taken: keep them.
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=start_step + 1 if start_step else None)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, desc=desc,
                        disable=not progress, smoothing=0.05, mininterval=progress_interval(sys.stderr))
        self._bar_step = start_step
        self._postfix_before: str | None = None  # the bar's postfix, while an evaluation shows its own
        self._pending: list[tuple[str, float, int, float]] = []  # (tag, value, step, wall time)
        self._flushed = time.monotonic()

    def write(self, line: str) -> None:
        """A console line above the progress bar."""
        say(line, above_bar=True)

    def flush(self) -> None:
        """Write the pending scalars to the event file, and wait until they are on disk."""
        for tag, value, step, wall_time in self._pending:
            self.writer.add_scalar(tag, value, step, walltime=wall_time)
        self._pending.clear()
        self.writer.flush()
        self._flushed = time.monotonic()

    def scalars(self, metrics: dict, step: int, prefix: str = "") -> None:
        wall_time = time.time()
        for name, value in metrics.items():
            # float() now, as TensorBoard would later: a tensor or array may change in the meantime.
            self._pending.append((f"{prefix}{name}", float(value), step, wall_time))
        if len(self._pending) >= self.FLUSH_SCALARS or time.monotonic() - self._flushed >= self.FLUSH_SECONDS:
            self.flush()

    def progress(self, step: int, **postfix) -> None:
        # Vector envs step in whole batches, so a run can end a few steps past total_steps
        # (1,504 for 1,500 with 8 envs): the bar's total follows, and it still ends at 100%.
        if self.bar.total is not None and step > self.bar.total:
            self.bar.total = step
        self.bar.update(step - self._bar_step)
        self._bar_step = step
        if postfix:
            self.bar.set_postfix({k: f"{v:.1f}" for k, v in postfix.items()}, refresh=False)

    def evaluating(self, steps: int, finished: int, episodes: int) -> None:
        """While an evaluation plays: its steps and finished episodes after the bar (an Atari
        evaluation can take minutes, with the bar standing still), redrawn at the bar's own pace."""
        if self.bar.disable:
            return
        if self._postfix_before is None:
            self._postfix_before = self.bar.postfix or ""
        self.bar.postfix = f"evaluating: {plural(steps, 'step')}, {finished} of {plural(episodes, 'episode')} done"
        redraw_at_its_pace(self.bar)

    def evaluated(self) -> None:
        """The bar as it was before the evaluation."""
        if self._postfix_before is not None:
            self.bar.postfix, self._postfix_before = self._postfix_before, None

    def figure(self, tag: str, figure, step: int) -> None:
        """A matplotlib Figure as an image, rendered with the Agg canvas (no pyplot, no backend state)."""
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.flush()  # the file keeps the order of the calls
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[:, :, :3]
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def progress_total(self, total: int, unit: str) -> None:
        """Re-scale the progress bar, for loops that count something else than env steps (sweeps)."""
        self.bar.reset(total=total)
        self.bar.unit = unit

    def config(self, cfg: DictConfig) -> None:
        self.flush()
        # Indented by four spaces so TensorBoard's markdown shows it as a code block.
        text = OmegaConf.to_yaml(cfg, resolve=True)
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def hparams(self, cfg: DictConfig, metrics: dict, step: int = 0, keys: list[str] | None = None) -> None:
        """Hyperparameters and final metrics in TensorBoard's HParams tab (written into this run):
        the whole flattened config, or only `keys` (in a sweep, the keys the sweep varies)."""
        self.flush()
        flat = flatten(OmegaConf.to_container(cfg, resolve=True))
        if keys is not None:
            flat = {k: v for k, v in flat.items() if k in keys or any(k.startswith(p + ".") for p in keys)}
        hp = {k: v if isinstance(v, (numbers.Number, str, bool)) else str(v) for k, v in flat.items()}
        for summary in with_bools(hparams(hp, metrics), {k for k, v in hp.items() if isinstance(v, bool)}):
            self.writer.file_writer.add_summary(summary)
        # At the run's last step, so that a resumed (extended) run's value replaces it cleanly.
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.bar.close()
        self.flush()
        self.writer.close()


def with_bools(summaries, bools: set[str]):
    """torch's `hparams` writes True and False as the numbers 1 and 0 (its int branch comes
    before its bool branch), so the HParams tab showed 1.0000 for `algo.double=true` and offered a
    numeric range to filter on. Mark those keys as booleans, as TensorBoard's own API does."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    for summary in summaries:
        value = summary.value[0]
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        for info in data.experiment.hparam_infos:
            if info.name in bools:
                info.type = api_pb2.DATA_TYPE_BOOL
        for name, hparam in data.session_start_info.hparams.items():
            if name in bools:
                hparam.bool_value = bool(hparam.number_value)
        value.metadata.plugin_data.content = data.SerializeToString()
        yield summary


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif value is not None:
            flat[name] = value
    return flat
