"""`TorchModel`: the language model as a PyTorch module, trained and evaluated for the
LanguageModel contract; the modes are described in the package docstring."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.base import Batch, EpochStats, LanguageModel
from backends.pytorch.recurrence import StackedRecurrent
from common.params import DIRECTIONS, Params, check_params
from common.specs import ModelSpec, RunSpec
from common.state import state_count, state_shape

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class RNNLanguageModel(nn.Module):
    """One-hot or embedded tokens -> stacked recurrent layer -> dense logits, time-major."""

    def __init__(self, model: ModelSpec, vocab_size: int, written_out: bool = False):
        super().__init__()
        self.vocab_size, self.one_hot = vocab_size, model.input == "one_hot"
        n_in = vocab_size if self.one_hot else model.embed_size
        if not self.one_hot:
            self.embed = nn.Embedding(vocab_size, model.embed_size)
        args = (n_in, model.num_hiddens, model.num_layers)
        if written_out and model.cell != "lstm":
            self.rnn = StackedRecurrent(model.cell, *args, dropout=model.dropout, bidirectional=model.bidirectional)
        else:
            kwargs = {"nonlinearity": "tanh"} if model.cell == "rnn" else {}
            self.rnn = CELLS[model.cell](*args, dropout=model.dropout, bidirectional=model.bidirectional, **kwargs)
        self.dense = nn.Linear(model.num_hiddens * model.num_directions, vocab_size)

    def inputs(self, X: torch.Tensor) -> torch.Tensor:
        """X (B, T) ids -> the recurrent layers' inputs (T, B, V or embed)."""
        ids = X.T.long()
        return F.one_hot(ids, self.vocab_size).to(self.dense.weight.dtype) if self.one_hot else self.embed(ids)

    def forward(self, X: torch.Tensor, state):
        """X (B, T) ids -> logits (T, B, V) and the new state."""
        out, state = self.rnn(self.inputs(X), state)
        return self.dense(out), state


def canonical_names(model: ModelSpec) -> dict[str, str]:
    """canonical name -> torch state_dict name."""
    names = {"embed.w": "embed.weight"} if model.input == "embedding" else {}
    torch_tensor = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
    for layer in range(model.num_layers):
        for d in range(model.num_directions):
            for canon, tname in torch_tensor.items():
                names[f"rnn.l{layer}.{DIRECTIONS[d]}.{canon}"] = f"rnn.{tname}_l{layer}{'_reverse' if d else ''}"
    names.update({"dense.w": "dense.weight", "dense.b": "dense.bias"})
    return names


class TorchModel(LanguageModel):
    def __init__(self, spec: RunSpec, vocab_size: int, device: torch.device, params: Params | None, mode: str,
                 settings):
        if params is None:
            torch.manual_seed(spec.train.seed)  # the framework's own init, still repeatable
        self.spec, self.mode, self.device, self.vocab_size = spec, mode, device, vocab_size
        self.settings = settings  # backend.MODES[mode]
        self.dtype = DTYPES[spec.train.dtype]
        written_out = settings.written_out and device.type == "cpu"  # see the package docstring
        self.net = RNNLanguageModel(spec.model, vocab_size, written_out).to(device=device, dtype=self.dtype)
        self.names = canonical_names(spec.model)
        self.clip_epsilon = 1e-6 if settings.library else 0.0  # clip_grad_norm_: clip / (norm + 1e-6)
        self._make_optimizer()
        self._train_loss = torch.compile(self._loss, dynamic=False) if settings.compiled else self._loss
        if params is not None:
            self.set_params(params)

    def _make_optimizer(self) -> None:
        """A fresh optimizer at the current learning rate (the spec's until
        `_set_learning_rate` changes it)."""
        t = self.spec.train
        kind = torch.optim.SGD if t.optimizer == "sgd" else torch.optim.Adam
        self.opt = kind(self.net.parameters(), lr=getattr(self, "lr", t.lr), foreach=True)

    def _set_learning_rate(self, lr: float) -> None:
        """Later steps use `lr` (the optimizer's param groups; its state is kept)."""
        self.lr = float(lr)
        for group in self.opt.param_groups:
            group["lr"] = self.lr

    # -- state -------------------------------------------------------------------
    def _zero_state(self, batch: int):
        h = torch.zeros(state_shape(self.spec.model, batch), device=self.device, dtype=self.dtype)
        return (h, torch.zeros_like(h)) if state_count(self.spec.model) == 2 else h

    def _next_state(self, state, batch: int):
        """Carry the previous batch's state (detached) or start from zeros."""
        if state is None or not self.spec.train.carries_state or _batch_of(state) != batch:
            return self._zero_state(batch)
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    def _to_device(self, X: np.ndarray, Y: np.ndarray):
        X = torch.from_numpy(np.ascontiguousarray(X)).to(self.device, non_blocking=True)
        y = torch.from_numpy(np.ascontiguousarray(Y.T)).reshape(-1).to(self.device, non_blocking=True)
        return X, y.long()

    def _loss(self, X, y, state):
        logits, state = self.net(X, state)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), y), state

    # -- training ----------------------------------------------------------------
    def _clip(self) -> None:
        """Scale gradients by min(1, clip/global norm) without leaving the device; the
        out-of-box mode calls the library's `clip_grad_norm_` (also on the device, its
        norm + 1e-6 in the denominator)."""
        clip = self.spec.train.clip
        if clip <= 0:
            return
        if self.settings.library:
            nn.utils.clip_grad_norm_(self.net.parameters(), clip, foreach=True)
            return
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        torch._foreach_mul_(grads, torch.clamp(clip / global_norm(grads), max=1.0))

    def _train_epoch(self, batches: Iterable[Batch]) -> EpochStats:
        self.net.train()
        total, tokens = self._new_total(), 0
        state = self._epoch_start_state()
        for X, Y in batches:
            X, y = self._to_device(X, Y)
            state = self._next_state(state, X.shape[0])
            loss, state = self._train_loss(X, y, state)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self._clip()
            self.opt.step()
            total = self._add_loss(total, loss, y.numel())
            tokens += y.numel()
        self._epoch_end_state(state)
        return EpochStats(float(total), tokens)  # float() waits for the device

    def _new_total(self):
        """The epoch's loss sum starts on the device, so no step waits for the host."""
        return torch.zeros((), device=self.device, dtype=torch.float64)

    def _add_loss(self, total, loss: torch.Tensor, count: int):
        total += loss.detach() * count
        return total

    @torch.no_grad()
    def _evaluate(self, batches: Iterable[Batch]) -> EpochStats:
        self.net.eval()
        total, tokens, state = torch.zeros((), device=self.device, dtype=torch.float64), 0, None
        for X, Y in batches:
            X, y = self._to_device(X, Y)
            state = self._next_state(state, X.shape[0])
            loss, state = self._loss(X, y, state)
            total += loss * y.numel()
            tokens += y.numel()
        return EpochStats(float(total), tokens)

    @torch.no_grad()
    def _predict(self, prefix_ids: list[int], num_preds: int) -> list[int]:
        self.net.eval()
        X = torch.tensor([prefix_ids], device=self.device)
        logits, state = self.net(X, self._zero_state(1))
        out = [int(logits[-1, 0].argmax())]
        for _ in range(num_preds - 1):
            logits, state = self.net(torch.tensor([[out[-1]]], device=self.device), state)
            out.append(int(logits[-1, 0].argmax()))
        return out

    def _recurrent_pass(self, X: np.ndarray, grads: bool) -> tuple[float, Params | None]:
        self.net.train()
        with torch.no_grad():
            x = self.net.inputs(self._to_device(X, X)[0])
        out, _ = self.net.rnn(x, self._zero_state(X.shape[0]))
        total = out.sum()
        total.backward()
        value = float(total.detach())  # waits for the device
        found = self._grads(lambda canon: canon.startswith("rnn.")) if grads else None
        self.net.rnn.zero_grad(set_to_none=True)
        return value, found

    def _grads(self, keep=lambda canon: True) -> Params:
        """The canonical gradients (those whose name `keep` accepts) as numpy arrays."""
        named = dict(self.net.named_parameters())
        return {canon: named[tname].grad.detach().cpu().numpy().copy()
                for canon, tname in self.names.items() if keep(canon)}

    # -- parameters --------------------------------------------------------------
    def get_params(self) -> Params:
        sd = self.net.state_dict()
        return {canon: sd[tname].detach().cpu().numpy().copy() for canon, tname in self.names.items()}

    def set_params(self, params: Params) -> None:
        check_params(params, self.spec.model, self.vocab_size)
        sd = {tname: torch.as_tensor(np.asarray(params[canon]), dtype=self.dtype)
              for canon, tname in self.names.items()}
        self.net.load_state_dict(sd)
        self._make_optimizer()
        self._run_state = None  # a fresh start carries no state over either

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Params]:
        self.net.train()
        self.net.zero_grad(set_to_none=True)
        X, y = self._to_device(X, Y)
        loss, _ = self._loss(X, y, self._zero_state(X.shape[0]))
        loss.backward()
        grads = self._grads()
        self.net.zero_grad(set_to_none=True)
        return float(loss.detach()), grads


class BookModel(TorchModel):
    """d2l 0.17's `train_epoch_ch8` on the library's layers: its `grad_clipping`, whose
    norm is compared on the host every step, and `float(loss)` every step (the book's
    per-step host syncs)."""

    def _clip(self) -> None:
        params = [p for p in self.net.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if self.spec.train.clip > 0 and norm > self.spec.train.clip:
            for p in params:
                p.grad[:] *= self.spec.train.clip / norm

    def _new_total(self) -> float:
        return 0.0

    def _add_loss(self, total: float, loss: torch.Tensor, count: int) -> float:
        return total + float(loss.detach() * count)  # the book's per-step host sync


def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The gradients' global L2 norm, summed with torch.sum's cascade summation.

    `torch._foreach_norm` and `vector_norm` accumulate each tensor in float32 lanes, and
    over millions of tiny gradients beside a few large ones (a 10k-word embedding and
    output layer) they lose up to 1e-3 of the norm: clipped steps then drift from the
    reference (word-level PTB: 7e-4 of a step at the second batch)."""
    return torch.sqrt(torch.sum(torch.stack([torch.sum(g * g) for g in grads])))


def _batch_of(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]
