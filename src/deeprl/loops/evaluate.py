import contextlib
import copy
from collections.abc import Callable

import numpy as np
import torch

from deeprl.core.interrupt import stop_if_asked
from deeprl.envs import make_vec_env
from deeprl.envs.episodes import EpisodeTracker


class EvaluationCut(Exception):
    """A training run's stop signal came while it was evaluating or recording: it stopped there."""


def check_stop(stopped: Callable[[], bool] | None) -> None:
    """Between two steps of an evaluation or a video: a Ctrl-C or SIGTERM noted by the `evaluate`
    command raises KeyboardInterrupt, a training run's stop request (`stopped()`) EvaluationCut."""
    stop_if_asked()
    if stopped is not None and stopped():
        raise EvaluationCut


def evaluate(agent, env_cfg, episodes: int, seed: int, stopped: Callable[[], bool] | None = None,
             progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Play `episodes` evaluation episodes in parallel (one env each) with `agent.act(eval_mode=True)`.

    Returns per-episode returns and lengths. Env i is reset with seed + i and the agent acts from
    streams seeded by `seed` (`evaluation_streams`), so an evaluation is a function of the policy
    and the seed: independent of the training envs' state and of the evaluations before it.
    Raises EvaluationCut at the first step after `stopped()` turns true (a training run asked to
    stop: an Atari evaluation can take minutes). `progress(steps, finished)`, if given, is called
    after every vector step with the steps played so far (per env) and the episodes finished.
    """
    envs = make_vec_env(env_cfg, episodes, seed, training=False)
    try:
        with evaluation_streams(agent, seed):
            obs, _ = envs.reset(seed=seed)
            # The tracker counts full games: an env that ends episodes at a lost life (Atari) reports
            # each game's score in its info, and only a finished game stops that env's evaluation.
            tracker = EpisodeTracker.for_envs(envs)
            returns = np.zeros(episodes)
            lengths = np.zeros(episodes, dtype=np.int64)
            running = np.ones(episodes, dtype=bool)
            steps = 0
            while running.any():
                check_stop(stopped)
                actions = agent.act(obs, step=0, eval_mode=True)
                obs, rewards, terminated, truncated, infos = envs.step(actions)
                for i, ret, length in tracker.step_envs(rewards, terminated | truncated, infos):
                    if running[i]:
                        returns[i], lengths[i], running[i] = ret, length, False
                steps += 1
                if progress is not None:
                    progress(steps, episodes - int(running.sum()))
            return returns, lengths
    finally:
        envs.close()


def record_video(agent, env_cfg, episodes: int, seed: int, folder, name_prefix: str = "eval",
                 key: str = "video.every", fix: str = "set video.every=0",
                 stopped: Callable[[], bool] | None = None) -> list:
    """Play `episodes` greedy episodes one after another and save each as
    `folder/<name_prefix>-episode-<i>.mp4` (i from 0; a file of that name is replaced).

    Uses gymnasium's RecordVideo on the evaluation env (full games for Atari: no life-loss resets).
    The agent's random streams are left as they were (`random_streams_kept`), so recording a video
    changes nothing that is learned or evaluated after it. Returns the paths of the videos written.
    A machine that cannot render raises ConfigError(`key`). Stops as `evaluate` does on `stopped()`,
    writing no video.
    """
    import os
    import shutil
    import tempfile
    import warnings
    from pathlib import Path

    from gymnasium.wrappers import RecordVideo

    from deeprl.core.errors import WriteFailed, write_failure
    from deeprl.envs.render import render_env

    env = render_env(env_cfg, key, fix)
    folder = Path(folder)
    videos = [folder / f"{name_prefix}-episode-{episode}.mp4" for episode in range(episodes)]
    # Encoded into a hidden folder beside them and moved into place once all are written: a video
    # that cannot be written (a full disk) leaves no half-written file, and no earlier one replaced.
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".recording-"))
    with warnings.catch_warnings():  # the staging folder exists, empty: it is where the videos go
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        env = RecordVideo(env, str(staging), episode_trigger=lambda _: True, name_prefix=name_prefix,
                          disable_logger=True)
    pending = None  # the video being encoded: a reset encodes the episode before it, closing the last
    try:
        try:
            with evaluation_streams(agent, seed):
                for episode in range(episodes):
                    pending = videos[episode - 1] if episode else None
                    obs, _ = env.reset(seed=seed + episode)
                    if pending is not None:
                        check_encoded(staging / pending.name, pending, key, fix)
                    pending = None
                    done = False
                    while not done:
                        check_stop(stopped)
                        action = agent.act(np.asarray(obs)[None], step=0, eval_mode=True)[0]
                        obs, _, terminated, truncated, _ = env.step(action)
                        done = terminated or truncated
            pending = videos[-1]
        finally:
            env.close()
        check_stop(stopped)
        check_encoded(staging / videos[-1].name, videos[-1], key, fix)
        for video in videos:
            os.replace(staging / video.name, video)
    except BaseException as error:
        env.recorded_frames = []  # not saved on purpose: no "Unable to save last video" at exit
        reason = write_failure(error)
        if reason is None:
            raise
        raise WriteFailed(key, pending or videos[-1], reason, f"make room, or {fix}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return videos


def check_encoded(encoded, path, key: str, fix: str) -> None:
    """Raise WriteFailed unless `encoded` is a whole mp4. moviepy does not look at ffmpeg's exit
    status: an encoder that could not write (a full disk, a quota) after taking in every frame of a
    short episode leaves an empty or cut-off file and no error."""
    from deeprl.core.errors import WriteFailed

    if not mp4_complete(encoded):
        raise WriteFailed(key, path, "the encoder could not finish it (a full disk, or a quota?)", f"make room, or {fix}")


def mp4_complete(path) -> bool:
    """Whether the file is a sequence of MP4 boxes that ends where the file does and holds both the
    media ('mdat') and its index ('moov', which ffmpeg writes last)."""
    import os

    try:
        size = os.path.getsize(path)
        kinds, at = set(), 0
        with open(path, "rb") as f:
            while at < size:
                f.seek(at)
                head = f.read(8)
                if len(head) < 8:
                    return False
                length, kind = int.from_bytes(head[:4], "big"), head[4:]
                if length == 1:  # a 64-bit size follows
                    length = int.from_bytes(f.read(8), "big")
                elif length == 0:  # to the end of the file
                    length = size - at
                if length < 8:
                    return False
                kinds.add(kind)
                at += length
    except OSError:
        return False
    return at == size and {b"mdat", b"moov"} <= kinds


def agent_streams(agent) -> tuple[list[np.random.Generator], list[torch.Generator]]:
    """The agent's own random generators, numpy's and torch's, whatever their names (DQN's eval_rng,
    a policy's sampling generator), in the order the agent made them."""
    return ([g for g in vars(agent).values() if isinstance(g, np.random.Generator)],
            [g for g in vars(agent).values() if isinstance(g, torch.Generator)])


@contextlib.contextmanager
def evaluation_streams(agent, seed: int):
    """Seed every stream of the agent's from the evaluation's seed for the time of the block, and
    put them back after it (`random_streams_kept`). An evaluation or a video is then a function of
    the policy and its seed: how often a run evaluates changes neither what it learns (a policy
    that samples in evaluation, `deterministic_eval: false`, draws from its training generator)
    nor any evaluation's result (epsilon-greedy draws), and `evaluate --seed` replays a run's own
    evaluation."""
    with random_streams_kept(agent):
        numpy_streams, torch_streams = agent_streams(agent)
        for i, g in enumerate(numpy_streams):
            g.bit_generator.state = type(g.bit_generator)(np.random.SeedSequence([seed, i])).state
        for i, g in enumerate(torch_streams):
            g.manual_seed(int(np.random.SeedSequence([seed, len(numpy_streams) + i]).generate_state(1, np.uint64)[0]))
        yield


@contextlib.contextmanager
def random_streams_kept(agent):
    """Put back, on leaving, every random stream acting can draw from: the agent's own generators
    (numpy's and torch's, whatever their names: DQN's eval_rng, a policy's sampling generator) and
    the global ones. A video is then invisible to the run: `video.every` changes no result, and can
    be changed on resume."""
    numpy_streams, torch_streams = agent_streams(agent)
    saved = ([copy.deepcopy(g.bit_generator.state) for g in numpy_streams], [g.get_state() for g in torch_streams],
             np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        for g, state in zip(numpy_streams, saved[0], strict=True):
            g.bit_generator.state = state
        for g, state in zip(torch_streams, saved[1], strict=True):
            g.set_state(state)
        np.random.set_state(saved[2])
        torch.set_rng_state(saved[3])
