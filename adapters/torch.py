"""PyTorch adapters: raw tensors with autograd, nn.Sequential with MSELoss, and torch.func.grad."""

from __future__ import annotations

import contextlib

import numpy as np

from adapters import DeviceUnavailable
from reference.case import Case

ACTIVATIONS = {  # catalogue name → (functional form, module class name)
    "sigmoid": ("sigmoid", "Sigmoid"),
    "tanh": ("tanh", "Tanh"),
    "relu": ("relu", "ReLU"),
    "softplus": ("softplus", "Softplus"),
    "identity": (None, "Identity"),
}


def _torch():
    import torch

    return torch


@contextlib.contextmanager
def _setting(device: str, precision: str):
    """Check the device, and run under a float32 matmul precision, restoring the old one."""
    torch = _torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("torch: no CUDA device (torch.cuda.is_available() is False)")
    if precision not in ("default", *_Torch.precisions):  # torch itself would ignore a typo
        raise ValueError(f"torch: unknown float32 matmul precision {precision!r}")
    before = torch.get_float32_matmul_precision()
    if precision != "default":
        torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class _Torch:
    """What every torch idiom shares: its precision settings and how to restore float32."""

    framework = "torch"
    precisions = ("highest", "high", "medium")
    float32_setting = 'torch.set_float32_matmul_precision("highest")'

    def resolve_precision(self, device: str) -> str:
        """Return what the untouched default float32 matmul precision is."""
        return _torch().get_float32_matmul_precision()

    def gradients(self, case: Case, dtype: str, device: str, precision: str = "default"):
        """Return the idiom's gradients of the summed cost (19) as NumPy arrays."""
        with _setting(device, precision):
            return self._gradients(case, dtype, device)


def _functional(name: str):
    """Return the torch function for a catalogue activation."""
    torch = _torch()
    fn, _ = ACTIVATIONS[name]
    return (lambda z: z) if fn is None else getattr(torch.nn.functional, fn)


def _tensors(case: Case, dtype: str, device: str, grad: bool) -> dict:
    torch = _torch()
    dt = getattr(torch, dtype)
    names = ("W1", "b1", "W2", "b2", "x", "y")
    return {
        k: torch.tensor(getattr(case, k), dtype=dt, device=device,
                        requires_grad=grad and k[0] in "Wb")
        for k in names
    }


def _numpy(grads: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in grads.items()}


def _cost(p: dict, x, y, s1, s2):
    a1 = s1(x @ p["W1"].T + p["b1"])  # (15)–(16)
    a2 = s2(a1 @ p["W2"].T + p["b2"])  # (17)–(18)
    return ((a2 - y) ** 2).sum()  # (19), summed over the batch


class TorchAutograd(_Torch):
    """Raw tensors, the cost written out, `backward()`."""

    name = "torch"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the autograd gradients of the summed cost."""
        t = _tensors(case, dtype, device, grad=True)
        p = {k: t[k] for k in ("W1", "b1", "W2", "b2")}
        _cost(p, t["x"], t["y"], _functional(case.sigma1), _functional(case.sigma2)).backward()
        return _numpy({k: v.grad for k, v in p.items()})


class TorchNN(_Torch):
    """nn.Sequential of nn.Linear and activation modules, nn.MSELoss(reduction="sum")."""

    name = "torch_nn"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the gradients of a Sequential model whose weights are copied from the case."""
        torch = _torch()
        nn = torch.nn
        (n0, n1, n2), dt = case.sizes, getattr(torch, dtype)
        model = nn.Sequential(
            nn.Linear(n0, n1), getattr(nn, ACTIVATIONS[case.sigma1][1])(),
            nn.Linear(n1, n2), getattr(nn, ACTIVATIONS[case.sigma2][1])(),
        ).to(device=device, dtype=dt)
        with torch.no_grad():
            for layer, W, b in ((model[0], case.W1, case.b1), (model[2], case.W2, case.b2)):
                layer.weight.copy_(torch.tensor(W, dtype=dt, device=device))
                layer.bias.copy_(torch.tensor(b, dtype=dt, device=device))
        t = _tensors(case, dtype, device, grad=False)
        nn.MSELoss(reduction="sum")(model(t["x"]), t["y"]).backward()
        grads = {"W1": model[0].weight.grad, "b1": model[0].bias.grad}
        grads |= {"W2": model[2].weight.grad, "b2": model[2].bias.grad}
        return _numpy(grads)


class TorchFunc(_Torch):
    """torch.func.grad of the cost as a pure function of the parameters."""

    name = "torch_func"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return torch.func.grad of the summed cost."""
        torch = _torch()
        t = _tensors(case, dtype, device, grad=False)
        p = {k: t[k] for k in ("W1", "b1", "W2", "b2")}
        s1, s2 = _functional(case.sigma1), _functional(case.sigma2)
        return _numpy(torch.func.grad(_cost)(p, t["x"], t["y"], s1, s2))
