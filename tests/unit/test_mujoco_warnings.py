"""MuJoCo's warnings go through deeprl's console writer: gymnasium's model-file deprecation is
dropped, any other warning is printed once, and nothing lands in a MUJOCO_LOG.TXT."""

import gymnasium as gym
import mujoco

from deeprl.envs import mujoco_warnings

UNSTABLE = '<mujoco><worldbody><body><freejoint/><geom size="0.1"/></body></worldbody></mujoco>'


def test_making_a_gymnasium_mujoco_env_prints_and_writes_nothing(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    mujoco_warnings.route()
    env = gym.make("HalfCheetah-v5")  # its model sets the deprecated 'settotalmass'
    env.reset(seed=0)
    env.close()
    assert capfd.readouterr() == ("", "")
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_another_warning_is_printed_once_on_stderr(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    mujoco_warnings.route()
    model = mujoco.MjModel.from_xml_string(UNSTABLE)
    for _ in range(2):  # two simulations diverge the same way: one line
        data = mujoco.MjData(model)
        data.qvel[:] = 1e20
        mujoco.mj_step(model, data)
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == ["deeprl | MuJoCo: Nan, Inf or huge value in QVEL at DOF 0. The simulation is "
                                "unstable. Time = 0.0000."]
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
