"""Deep Q-network (Mnih et al. 2015) and its refinements, each a switch.

Q(s, ·) is a torso (from `network`) and a head: linear, or dueling V + A - mean(A). Acting is
epsilon-greedy with epsilon decaying linearly. Learning regresses Q(s, a) on the target
r + discount · Q_target(s', a*), where the buffer provides r and the discount (γ^n for n-step
returns, 0 after a termination), a* is argmax Q_target (or argmax Q online for double DQN), and
Q_target is a periodically refreshed copy (or the online network itself when `target.enabled`
is false, the Nature ablation). With prioritized replay the loss is importance-weighted and the
absolute TD errors go back to the buffer as new priorities.
"""

import contextlib
import copy

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from deeprl.algos.base import require_discrete
from deeprl.buffers import Batch
from deeprl.core.console import say
from deeprl.core.device import precision_note, resolve_precision
from deeprl.core.errors import ConfigError
from deeprl.core.graphs import CudaGraphed
from deeprl.core.params import flat_parameters, optimizer_step, polyak_update
from deeprl.core.schedules import linear_schedule
from deeprl.envs import EnvSpec
from deeprl.networks import DuelingHead, QHead


class QNetwork(nn.Module):
    def __init__(self, torso: nn.Module, n_actions: int, dueling: bool = False, fp32_head: bool = False):
        super().__init__()
        self.torso = torso
        self.head = (DuelingHead if dueling else QHead)(torso.out_dim, n_actions)
        self.fp32_head = fp32_head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.torso(obs)
        if not self.fp32_head:
            return self.head(features)
        # Under bf16 autocast the head still runs in fp32: the Q-values of different actions are
        # close together relative to their size, closer than bf16's 8-bit mantissa resolves, and
        # a bf16 argmax would pick actions by rounding noise.
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.head(features.float())


class DQN:
    LEARNED = ("q", "q_target")

    def __init__(self, spec: EnvSpec, network, device: torch.device, rng: np.random.Generator,
                 total_steps: int, *, gamma: float, lr: float, anneal_lr: bool, adam_eps: float,
                 loss: str, max_grad_norm: float | None, double: bool, dueling: bool,
                 exploration, target, precision: str = "fp32", compile: bool = False, cuda_graphs: bool | str = "auto"):
        require_discrete("dqn", spec)
        self.device = device
        self.rng = rng
        # Evaluation draws from its own stream, so how often a run evaluates never changes training.
        self.eval_rng = np.random.default_rng(rng.integers(2**63))
        self.n_actions = spec.n_actions
        self.gamma = gamma
        self.double = double
        self.lr, self.anneal_lr, self.total_steps = lr, anneal_lr, total_steps
        self.loss = loss
        self.max_grad_norm = max_grad_norm
        self.eps_start, self.eps_end = exploration.start, exploration.end
        self.eps_decay_steps = exploration.fraction * total_steps
        self.eps_eval = exploration.eval
        self.use_target = bool(target.enabled)
        self.target_every, self.tau = int(target.every), float(target.tau)
        torso = instantiate(network, obs_shape=spec.obs_shape)
        convolutional = any(isinstance(m, nn.Conv2d) for m in torso.modules())
        self.precision = resolve_precision(precision, device, large=convolutional)
        note = precision_note(self.precision, device)
        if note:  # one line at build time: bf16 asked for where it only costs time
            say(note)
        self.autocast = autocast_context(self.precision, device)
        self.q = QNetwork(torso, spec.n_actions, dueling, fp32_head=self.precision != "fp32").to(device)
        # Small (non-convolutional) networks keep their parameters in one flat tensor, so zeroing,
        # clipping and the Adam step are one call each instead of a loop over every tensor (for a
        # CartPole MLP those loops cost more than the arithmetic). Convolutions keep their own
        # tensors: channels_last weights cannot be views of a flat vector.
        self.flat = None if convolutional else flat_parameters(self.q.parameters())
        # Without a target network (the Nature ablation) the online network bootstraps itself.
        self.q_target = copy.deepcopy(self.q).requires_grad_(False) if self.use_target else self.q
        if self.use_target and self.precision == "bf16" and self.tau >= 1.0:
            # The target network only runs under bf16 autocast, so its torso can live in bf16 and
            # skip the cast of every weight at every update; hard copies round once per sync
            # (Polyak averaging keeps fp32: small tau steps would vanish in bf16 rounding).
            self.q_target.torso.to(torch.bfloat16)
        # The fused kernel does the whole Adam step in one call (4x cheaper for small MLPs on CPU).
        params = self.q.parameters() if self.flat is None else [self.flat]
        self.cuda_graphs = resolve_cuda_graphs(cuda_graphs, device, self.precision, compile, convolutional)
        if self.cuda_graphs and cuda_graphs == "auto":
            say("deeprl | update and greedy acting replayed as CUDA graphs (algo.cuda_graphs auto: a "
                "convolutional torso in fp32 on a GPU); algo.cuda_graphs=false runs them eagerly")
        if self.cuda_graphs:
            # Replayed graphs read the learning rate from the device: a tensor, refilled each update.
            self.optimizer = torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device), eps=adam_eps,
                                              fused=True, capturable=True)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, eps=adam_eps, fused=True)
        self.target_syncs = 0
        self.q_forward = torch.compile(self.q) if compile else self.q
        # algo.cuda_graphs: the update, and greedy acting per batch size, replayed as CUDA graphs.
        self.graphed_learn = CudaGraphed(self._learn) if self.cuda_graphs else None
        self.graphed_greedy: dict[tuple, CudaGraphed] = {}

    def epsilon(self, step: int) -> float:
        return linear_schedule(self.eps_start, self.eps_end, self.eps_decay_steps, step)

    def charts(self, step: int) -> dict:
        return {"charts/epsilon": self.epsilon(step), "charts/learning_rate": self.learning_rate(step)}

    def learning_rate(self, step: int) -> float:
        # Annealing to zero freezes the policy as training ends instead of letting it drift.
        return linear_schedule(self.lr, 0.0, self.total_steps, step) if self.anneal_lr else self.lr

    def act(self, obs: np.ndarray, step: int, eval_mode: bool = False) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations (leading axis = env)."""
        n = len(obs)
        eps = self.eps_eval if eval_mode else self.epsilon(step)
        rng = self.eval_rng if eval_mode else self.rng
        explore = rng.random(n) < eps
        actions = rng.integers(0, self.n_actions, size=n)
        if explore.all():  # the network is only needed when some env acts greedily
            return actions
        obs_t = torch.from_numpy(np.asarray(obs))
        if self.device.type != "cpu":
            obs_t = obs_t.to(self.device, non_blocking=True)
        # Acting stays in fp32 whatever the precision: a forward pass over a few observations gains
        # nothing from bf16, and autocast would re-cast every weight at every step.
        if self.cuda_graphs:
            graphed = self.graphed_greedy.setdefault(tuple(obs_t.shape), CudaGraphed(self._greedy))
            greedy = graphed(obs_t)[0].cpu().numpy()
        else:
            with torch.inference_mode():
                greedy = self._greedy(obs_t)[0].cpu().numpy()
        return np.where(explore, actions, greedy)

    def _greedy(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
        with torch.no_grad():
            return (self.q_forward(obs).argmax(dim=1),)

    def update(self, batch: Batch, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One gradient step: (metrics, |TD error| per sample, the new priorities for prioritized replay)."""
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        tensors = (batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.discounts, batch.weights)
        learn = self.graphed_learn or self._learn
        loss, q_mean, td_errors = learn(*tensors)

        # Refresh the target once per `target_every` environment steps.
        if self.use_target and step // self.target_every > self.target_syncs:
            self.target_syncs = step // self.target_every
            self._sync_target()
        return {"td_loss": loss, "q_values": q_mean}, td_errors

    def _learn(self, obs, actions, rewards, next_obs, discounts, weights) -> tuple[torch.Tensor, ...]:
        """The TD step on one batch: (loss, mean Q, |TD error| per sample). Tensors in, tensors out,
        no host sync: the same code runs eagerly or recorded in a CUDA graph."""
        batch = Batch(obs, actions, rewards, next_obs, discounts, weights)
        with self.autocast():
            # ALGO LOGIC: the TD target is a constant; no gradient flows through it.
            with torch.no_grad():
                next_q_target = self.q_target(batch.next_obs).float()
                if self.double:
                    # Double DQN: the online network picks a', the target network evaluates it.
                    next_actions = self.q_forward(batch.next_obs).argmax(dim=1, keepdim=True)
                    next_q = next_q_target.gather(1, next_actions).squeeze(1)
                else:
                    next_q = next_q_target.max(dim=1).values
                td_target = batch.rewards + batch.discounts * next_q
            q = self.q_forward(batch.obs).float().gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        # The loss is computed in fp32 whatever the precision of the forward pass.
        if self.loss == "huber":
            elementwise = F.smooth_l1_loss(q, td_target, reduction="none")
        else:
            elementwise = F.mse_loss(q, td_target, reduction="none")
        # Prioritized replay: importance weights undo the bias of non-uniform sampling.
        loss = elementwise.mean() if batch.weights is None else (batch.weights * elementwise).mean()
        optimizer_step(self.optimizer, loss, self.max_grad_norm, self.q.parameters(), self.flat)
        return loss.detach(), q.detach().mean(), (td_target - q).detach().abs()

    @torch.no_grad()
    def _sync_target(self) -> None:
        if self.tau >= 1.0:
            self.q_target.load_state_dict(self.q.state_dict())
        else:
            polyak_update(self.q_target.parameters(), self.q.parameters(), self.tau)

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "target_syncs": self.target_syncs,
                "eval_rng": self.eval_rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])  # new state tensors: graphs record again
        if self.graphed_learn is not None:
            self.graphed_learn.reset()
        self.target_syncs = state["target_syncs"]
        if "eval_rng" in state:  # absent from checkpoints written before resume existed
            self.eval_rng.bit_generator.state = state["eval_rng"]


def resolve_cuda_graphs(setting: bool | str, device: torch.device, precision: str, compile: bool,
                        convolutional: bool) -> bool:
    """`algo.cuda_graphs`. auto: graphs where they were measured to pay, a convolutional torso
    trained on a GPU in fp32 without torch.compile (an H200, DQN Breakout: 519 steps/s while
    learning against 318 eager, docs/benchmarks.md); they give the eager update's numbers, bit for
    bit under deterministic kernels. An MLP on a GPU stays eager under auto (not measured there).
    true: graphs, or an error naming what stands in the way. false: eager."""
    if setting == "auto":
        return device.type == "cuda" and precision == "fp32" and not compile and convolutional
    if setting and device.type != "cuda":
        raise ConfigError("algo.cuda_graphs", f"CUDA graphs need the run on a GPU, but it trains on {device}; "
                                              "set algo.cuda_graphs=false (or device=cuda)")
    if setting and (precision != "fp32" or compile):
        raise ConfigError("algo.cuda_graphs", "CUDA graphs are recorded from the fp32 eager update; set "
                                              "algo.precision=fp32 and algo.compile=false, or algo.cuda_graphs=false")
    return bool(setting)


def autocast_context(precision: str, device: torch.device):
    """fp32, or bf16 autocast (weights, optimizer state and loss stay fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ConfigError("algo.precision", f"unknown precision '{precision}'; use auto, fp32 or bf16")
