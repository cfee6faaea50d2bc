import numpy as np

from deeprl.envs import make_vec_env


def evaluate(agent, env_cfg, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Play `episodes` evaluation episodes in parallel (one env each) with `agent.act(eval_mode=True)`.

    Returns per-episode returns and lengths. Env i is reset with seed + i, so an evaluation is
    reproducible and independent of the training envs' state.
    """
    envs = make_vec_env(env_cfg, episodes, seed, training=False)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            actions = agent.act(obs, step=0, eval_mode=True)
            obs, rewards, terminated, truncated, _ = envs.step(actions)
            returns += rewards * running
            lengths += running
            running &= ~(terminated | truncated)
        return returns, lengths
    finally:
        envs.close()
