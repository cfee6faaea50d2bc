"""Image envs of gymnasium's (`env=gym`): a run on stacked frames of CarRacing, end to end."""

from conftest import compose_config
from deeprl.buffers import FrameReplayBuffer
from deeprl.build import build


def test_dqn_on_stacked_carracing_frames_stores_each_frame_once_and_evaluates(tmp_path):
    """CarRacing with discrete actions, 2 frames stacked (RL-Zoo's setting): the replay keeps each
    96x96x3 screen once, not the 4 copies that obs and next_obs rows of 2-frame stacks would, and
    a batch drawn from it holds the stacks the env produced."""
    cfg = compose_config("algo=dqn", "env=gym", "env.id=CarRacing-v3", "+env.kwargs.continuous=false",
                         "env.frame_stack=2", "env.max_episode_steps=60", "network=nature_cnn", "total_steps=150",
                         "algo.learning_starts=100", "algo.buffer_size=1000", "algo.batch_size=8",
                         "eval.every=0", "eval.episodes=1", "log.progress=false", "device=cpu")
    run = build(cfg, tmp_path / "run")
    buffer = run.loop.buffer
    assert isinstance(buffer, FrameReplayBuffer) and buffer.frame_stack == 2 and buffer.frame_shape == (3, 96, 96)
    summary = run.execute()
    assert summary["total_steps"] == 150 and summary["eval_episodes"] == 1
    assert len(buffer) == 150
    # 150 transitions in episodes of at most 60 steps (3 or more starts): one new frame per step, and
    # each episode's first stack (copies of its first frame) once.
    assert 150 + 3 <= buffer.frames_written <= 150 + 6
    batch = buffer.sample(8, run.rng)
    assert tuple(batch.obs.shape) == (8, 6, 96, 96)
    # s' is s shifted by one frame, unless the episode ended there (then s' is the final stack).
    shifted = (batch.next_obs[:, :3] == batch.obs[:, 3:]).flatten(1).all(1)
    assert bool(shifted.all())
