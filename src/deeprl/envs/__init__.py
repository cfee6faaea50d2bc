"""Environment creation: one place that turns an `env` config into vector envs and an EnvSpec."""

from deeprl.envs.make import EnvSpec, make_vec_env, spec_of

__all__ = ["EnvSpec", "make_vec_env", "spec_of"]
