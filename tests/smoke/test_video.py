"""Videos: `video.every` while training, `evaluate --video`, on a machine without a display.

Every run here has DISPLAY, WAYLAND_DISPLAY, XDG_RUNTIME_DIR and the renderers' own variables
removed, as on a cluster node or in CI; the mp4s are read back and their frames counted."""

import ctypes.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

import consoles
from conftest import as_in_a_terminal, train_cli

HEADLESS = {key: value for key, value in os.environ.items()
            if key not in {"DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "SDL_VIDEODRIVER", "MUJOCO_GL",
                           "PYOPENGL_PLATFORM"}}
# Noise the renderers print when left to themselves on such a machine (SDL, gymnasium's RecordVideo,
# PyOpenGL's INFO line about its optional accelerator, which Hydra's logging would print).
NOISE = ("XDG_RUNTIME_DIR", "Overwriting existing videos", "Exception ignored", "Traceback", "OpenGL_accelerate")
CARTPOLE = ["algo=ppo", "env=cartpole", "total_steps=6000", "eval.every=0", "eval.episodes=2", "log.progress=false"]


def frames(path: Path):
    """The decoded frames of an mp4: (frames, height, width, 3) uint8, checked to show a scene
    (a blank or one-colour video, as a renderer without a context can give, fails)."""
    clip = iio.imread(path)
    assert clip.std() > 10, f"{path.name}: blank frames"
    return clip


def evaluate_cli(*args: str) -> subprocess.CompletedProcess:
    return consoles.run("evaluate", *args, env=HEADLESS)


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    for noise in NOISE:
        assert noise not in result.stderr + result.stdout, result.stderr[-3000:]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("video")
    result = train_cli(*CARTPOLE, "video.every=2000", "checkpoint.every=2000", cwd=cwd, env=HEADLESS)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = list((cwd / "outputs" / "ppo" / "cartpole").iterdir())
    return result, run_dir


def test_training_records_one_episode_per_interval_without_renderer_noise(cartpole_run):
    result, run_dir = cartpole_run
    assert_quiet(result)
    videos = sorted(p.name for p in (run_dir / "videos").iterdir())
    assert videos == ["step_2000-episode-0.mp4", "step_4000-episode-0.mp4", "step_6000-episode-0.mp4"]
    for video in videos:
        clip = frames(run_dir / "videos" / video)
        # CartPole's shortest episode is 8 steps: the reset frame and one per step; 600x400 frames.
        assert clip.shape[0] >= 9 and clip.shape[1:] == (400, 600, 3)


def test_evaluate_names_results_and_videos_by_checkpoint(cartpole_run):
    _, run_dir = cartpole_run
    final = evaluate_cli(str(run_dir), "--episodes", "2", "--video", "--video-episodes", "2")
    assert final.returncode == 0, final.stderr[-3000:]
    assert_quiet(final)
    videos = run_dir / "videos"
    # The videos do not depend on --episodes, so their names leave it out; the result's name has it.
    assert final.stdout.splitlines()[1:] == [f"result: {run_dir / 'evaluation-episodes2.json'}",
                                             *(f"video: {videos / f'evaluate-final-episode-{i}.mp4'}" for i in (0, 1))]
    step = evaluate_cli(str(run_dir / "checkpoints" / "step_2000.pt"), "--episodes", "3", "--video")
    assert step.returncode == 0, step.stderr[-3000:]
    assert_quiet(step)
    # Only the files this command wrote are reported; the final checkpoint's result is kept.
    assert step.stdout.splitlines()[1:] == [f"result: {run_dir / 'evaluation-step_2000-episodes3.json'}",
                                            f"video: {videos / 'evaluate-step_2000-episode-0.mp4'}"]
    kept = json.loads((run_dir / "evaluation-episodes2.json").read_text())
    other = json.loads((run_dir / "evaluation-step_2000-episodes3.json").read_text())
    assert kept["checkpoint"].endswith("final.pt") and kept["episodes"] == 2 and len(kept["videos"]) == 2
    assert other["checkpoint"].endswith("step_2000.pt") and other["episodes"] == 3
    assert other["videos"] == [str(videos / "evaluate-step_2000-episode-0.mp4")]
    # Acting otherwise is another video: the policy sampling, named, beside its most likely actions.
    noisy = evaluate_cli(str(run_dir / "checkpoints" / "step_2000.pt"), "--episodes", "3", "--video", "--stochastic")
    assert noisy.returncode == 0, noisy.stderr[-3000:]
    assert noisy.stdout.splitlines()[1:] == [f"result: {run_dir / 'evaluation-step_2000-episodes3-stochastic.json'}",
                                             f"video: {videos / 'evaluate-step_2000-stochastic-episode-0.mp4'}"]
    for name in ("evaluate-final-episode-0.mp4", "evaluate-final-episode-1.mp4", "evaluate-step_2000-episode-0.mp4",
                 "evaluate-step_2000-stochastic-episode-0.mp4"):
        assert frames(videos / name).shape[0] >= 9


@pytest.mark.parametrize(("args", "error"), [
    (["--video", "--video-episodes", "0"], "--video-episodes: must be >= 1, got 0"),
    (["--video-episodes", "3"], "--video-episodes: records videos only with --video; add --video"),
    (["--seed", "-5"], "--seed: must be >= 0, got -5; e.g. --seed 0"),
])
def test_evaluate_refuses_bad_video_and_seed_arguments_and_writes_nothing(cartpole_run, args, error):
    _, run_dir = cartpole_run
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    result = evaluate_cli(str(run_dir), *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"evaluate: error: {error}"
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before


def test_a_planner_records_its_final_policy(tmp_path):
    """Planners learn from sweeps, not env steps: one video of the final greedy policy, drawn by
    the gridworld's own rgb_array frames (3 x 4 cells of 32 pixels)."""
    result = train_cli("algo=value_iteration", "env=gridworld_4x3", "video.every=1", "log.progress=false",
                       cwd=tmp_path, env=HEADLESS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_quiet(result)
    [run_dir] = list((tmp_path / "outputs" / "value_iteration" / "gridworld_4x3").iterdir())
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == ["final-episode-0.mp4"]
    clip = frames(run_dir / "videos" / "final-episode-0.mp4")
    # The optimal policy needs at least 5 moves from the start to the +1 exit.
    assert clip.shape[0] >= 6 and clip.shape[1:] == (96, 128, 3)


SAC_CHEETAH = ["algo=sac", "env=halfcheetah", "total_steps=200", "algo.learning_starts=100", "eval.episodes=1",
               "env.max_episode_steps=20", "log.progress=false"]


def test_mujoco_renders_offscreen_or_says_what_to_install(tmp_path):
    """Without a display MuJoCo renders through EGL where libEGL is installed; elsewhere the run is
    refused at the start, in one line naming MUJOCO_GL and the libraries."""
    result = train_cli(*SAC_CHEETAH, "video.every=200", cwd=tmp_path, env=HEADLESS)
    assert_quiet(result)
    if ctypes.util.find_library("EGL"):
        assert result.returncode == 0, result.stderr[-3000:]
        [run_dir] = list((tmp_path / "outputs" / "sac" / "halfcheetah").iterdir())
        assert frames(run_dir / "videos" / "step_200-episode-0.mp4").shape[0] == 21  # reset + 20 steps
    else:
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("deeprl: error: video.every: HalfCheetah-v5 cannot render a frame here (")
        assert "MUJOCO_GL=egl" in line and "set video.every=0" in line


def test_a_machine_that_cannot_render_is_refused_before_the_run_starts(tmp_path):
    """EGL asked for while PyOpenGL is held to another platform: MuJoCo's EGL backend cannot load,
    on any machine. One line with the fix, exit 2, no run dir left, no traceback from gymnasium's
    half-built viewer."""
    env = {**HEADLESS, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "osmesa"}
    result = train_cli(*SAC_CHEETAH, "video.every=200", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert_quiet(result)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("deeprl: error: video.every: HalfCheetah-v5 cannot render a frame here (ImportError: ")
    assert line.endswith("MUJOCO_GL=osmesa (libosmesa6): install one, or set video.every=0")
    assert not (tmp_path / "outputs").exists()


def test_evaluate_is_refused_before_its_episodes_when_frames_cannot_be_drawn(tmp_path):
    trained = train_cli(*SAC_CHEETAH, cwd=tmp_path, env=HEADLESS)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [run_dir] = list((tmp_path / "outputs" / "sac" / "halfcheetah").iterdir())
    env = {**HEADLESS, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "osmesa"}
    result = consoles.run("evaluate", str(run_dir), "--video", env=env)
    assert result.returncode == 2
    assert_quiet(result)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("evaluate: error: --video: HalfCheetah-v5 cannot render a frame here (ImportError: ")
    assert line.endswith("install one, or run without --video")
    assert not list(run_dir.glob("evaluation*.json")) and not (run_dir / "videos").exists()


def test_videos_can_be_turned_off_or_on_when_resuming(tmp_path):
    """`video.*` is one of the keys a resume may change (a video changes nothing that follows):
    a run resumed where frames cannot be drawn can go on without them. Turned back on, videos come
    at the multiples of the new `video.every`, not at once for the marks passed while they were off."""
    first = train_cli(*CARTPOLE[:2], "total_steps=2000", *CARTPOLE[3:], "video.every=1000", cwd=tmp_path, env=HEADLESS)
    assert first.returncode == 0, first.stderr[-3000:]
    [run_dir] = list((tmp_path / "outputs" / "ppo" / "cartpole").iterdir())
    off = train_cli(f"resume={run_dir}", "total_steps=4000", "video.every=0", cwd=tmp_path, env=HEADLESS)
    assert off.returncode == 0, off.stderr[-3000:]
    on = train_cli(f"resume={run_dir}", "total_steps=6000", "video.every=1000", cwd=tmp_path, env=HEADLESS)
    assert on.returncode == 0, on.stderr[-3000:]
    videos = sorted(p.name for p in (run_dir / "videos").iterdir())
    assert videos == [f"step_{step}-episode-0.mp4" for step in (1000, 2000, 5000, 6000)]


def limited_encoder(tmp_path: Path, blocks: int) -> dict:
    """The environment for a run whose encoder (the real ffmpeg) may write at most `blocks` blocks to
    a file, as on a full disk or over a quota: 0 fails its first write, 1 cuts the file off after
    ffmpeg has taken in the frames (ffmpeg then fails, and moviepy does not look at its exit status)."""
    from moviepy.config import FFMPEG_BINARY

    limited = tmp_path / "ffmpeg"
    limited.write_text(f"#!/bin/sh\ntrap '' XFSZ\nulimit -f {blocks}\nexec '{FFMPEG_BINARY}' \"$@\"\n")
    limited.chmod(0o755)
    return {**HEADLESS, "FFMPEG_BINARY": str(limited)}


# The encoder's own error when moviepy sees it; else deeprl's check that each mp4 is whole.
REASON = r"(File too large|the encoder could not finish it \(a full disk, or a quota\?\))"


@pytest.mark.parametrize("blocks", [0, 1])
def test_a_video_evaluate_cannot_write_stops_it_in_one_line_and_leaves_no_partial_file(cartpole_run, tmp_path, blocks):
    _, run_dir = cartpole_run
    videos = run_dir / "videos"

    def files():
        return {p: p.stat().st_mtime_ns if p.is_file() else None for p in run_dir.rglob("*")}

    before = files()
    result = consoles.run("evaluate", str(run_dir), "--episodes", "1", "--video", "--video-episodes", "2",
                          env=limited_encoder(tmp_path, blocks))
    assert result.returncode == 2, result.stderr[-3000:]
    assert re.fullmatch(f"evaluate: error: --video: cannot write {re.escape(str(videos / 'evaluate-final-episode-0.mp4'))}"
                        f": {REASON}; make room, or run without --video", result.stderr.strip().splitlines()[-1])
    assert files() == before  # nothing added or replaced


def test_a_video_a_run_cannot_write_stops_it_in_one_line_and_the_advice_goes_on(tmp_path):
    env = limited_encoder(tmp_path, 1)
    run = tmp_path / "run"
    trained = train_cli(*CARTPOLE[:2], "total_steps=3000", *CARTPOLE[3:], "video.every=1000", "checkpoint.every=500",
                        f"hydra.run.dir={run}", cwd=tmp_path, env=env)
    [kept] = list((run / "checkpoints").iterdir())  # PPO's cadences land on whole rollouts: step_504.pt
    assert trained.returncode == 2, trained.stderr[-3000:]
    assert re.fullmatch(f"deeprl: error: video.every: cannot write {re.escape(str(run / 'videos' / 'step_1000-episode-0.mp4'))}"
                        f" at step 1000: {REASON}; training stopped and the last checkpoint is {re.escape(str(kept))}; "
                        f"make room, then: train resume={re.escape(str(run))} \\(add video.every=0 to record no more "
                        "videos\\)", trained.stderr.strip().splitlines()[-1])
    assert list((run / "videos").iterdir()) == []
    resumed = train_cli(f"resume={run}", "video.every=0", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["total_steps"] == 3000


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_while_evaluate_records_stops_in_one_line_and_leaves_no_partial_video(cartpole_run, sig):
    """Ctrl-C, or SIGTERM (`kill`, `timeout`, a cluster's cancellation). Before, SIGTERM ended the
    command with its staging folder left behind, or, once pygame had started SDL, was taken by SDL
    and ignored: all 50 videos were played and written."""
    import signal
    import time

    signum = signal.Signals[sig]

    _, run_dir = cartpole_run
    videos = run_dir / "videos"
    before = sorted(p.name for p in videos.iterdir())
    evaluations = {p.name: p.read_bytes() for p in run_dir.glob("evaluation*.json")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "evaluate"), str(run_dir), "--episodes", "1", "--video",
                             "--video-episodes", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=HEADLESS, preexec_fn=as_in_a_terminal)
    deadline = time.time() + 120
    while not list(videos.glob(".recording-*/*.mp4")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)  # until the first of its videos is encoded
    assert proc.poll() is None, "evaluate ended before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.strip().splitlines()[-1]) == (128 + signum, f"evaluate: stopped by {sig}; nothing "
                                                                             "half-written is left")
    assert "Traceback" not in err
    assert sorted(p.name for p in videos.iterdir()) == before  # no staging folder, no new video
    assert {p.name: p.read_bytes() for p in run_dir.glob("evaluation*.json")} == evaluations
