"""Bad input: a non-zero exit, one line naming the key and the fix, and no run dir left behind."""

import pytest
import torch

from conftest import train_cli

CASES = [
    (["total_steps=0"], "total_steps"),
    (["total_steps=-5"], "total_steps"),
    (["algo.gamma=1.5"], "algo.gamma"),
    (["algo.gamma=0"], "algo.gamma"),
    (["algo.lr=-0.001"], "algo.lr"),
    (["algo.batch_size=512", "algo.buffer_size=100"], "algo.batch_size"),
    (["env=gym", "env.id=NoSuchEnv-v9"], "env.id"),
    (["env=gym", "env.id=Pendulum-v1"], "discrete"),
    (["device=tpu"], "device"),
    (["num_envs=0"], "num_envs"),
    (["algo.exploration.end=2"], "algo.exploration.end"),
    (["algo.loss=l1"], "algo.loss"),
]
if not torch.cuda.is_available():
    CASES.append((["device=cuda"], "device"))


@pytest.mark.parametrize(("overrides", "key"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_value_fails_with_one_line_and_leaves_nothing(tmp_path, overrides, key):
    result = train_cli(*overrides, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and lines[0].startswith("deeprl: error:")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists(), "a half-written run dir was left behind"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["algo=nosuchalgo"], "nosuchalgo"),
        (["env=nosuchenv"], "nosuchenv"),
        (["network=nosuchnet"], "nosuchnet"),
        (["algo.lrr=0.1"], "lrr"),
        (["total_stepz=10"], "total_stepz"),
    ],
)
def test_unknown_names_and_keys_are_rejected_by_hydra(tmp_path, overrides, expected):
    result = train_cli(*overrides, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
