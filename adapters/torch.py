"""PyTorch adapters: raw tensors with autograd, nn.Sequential with MSELoss, and torch.func.grad;
their Hessian-vector products by double backward (`create_graph=True`) and by
`torch.func.jvp` of `torch.func.grad`."""

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

    def hvp(self, case: Case, v: dict, dtype: str, device: str, precision: str = "default"):
        """Return the idiom's Hessian-vector product H·v of the summed cost as NumPy arrays."""
        with _setting(device, precision):
            return self._hvp(case, v, dtype, device)


def _functional(name: str):
    """Return the torch function for a catalogue activation."""
    torch = _torch()
    fn, _ = ACTIVATIONS[name]
    return (lambda z: z) if fn is None else getattr(torch.nn.functional, fn)


def _tensors(case: Case, dtype: str, device: str, grad: bool) -> tuple[dict, object, object]:
    """Return the case's parameters (W1, b1, …, WL, bL), x and y as tensors."""
    torch = _torch()
    dt = getattr(torch, dtype)
    put = lambda a, g=False: torch.tensor(a, dtype=dt, device=device, requires_grad=g)  # noqa: E731
    p = {}
    for i, layer in enumerate(case.layers, 1):
        p[f"W{i}"], p[f"b{i}"] = put(layer.W, grad), put(layer.b, grad)
    return p, put(case.x), put(case.y)


def _like(v: dict, p: dict) -> dict:
    """Return the direction v as tensors of the parameters' dtype and device."""
    torch = _torch()
    return {k: torch.tensor(v[k], dtype=t.dtype, device=t.device) for k, t in p.items()}


def _double_backward(cost, params: list, tangents: list) -> tuple:
    """Return H·v by differentiating ⟨∇C, v⟩ once more (∇C taken with create_graph=True)."""
    torch = _torch()
    grads = torch.autograd.grad(cost, params, create_graph=True)
    dot = sum((g * t).sum() for g, t in zip(grads, tangents, strict=True))
    return torch.autograd.grad(dot, params)


def _numpy(grads: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in grads.items()}


def _cost(p: dict, x, y, sigmas: tuple):
    a = x
    for i, sigma in enumerate(sigmas, 1):
        a = sigma(a @ p[f"W{i}"].T + p[f"b{i}"])  # (13): z⁽ⁱ⁾ = W⁽ⁱ⁾a⁽ⁱ⁻¹⁾ + b⁽ⁱ⁾, then σ⁽ⁱ⁾
    return ((a - y) ** 2).sum()  # (19), summed over the batch


def _sigmas(case: Case) -> tuple:
    return tuple(_functional(layer.sigma) for layer in case.layers)


class TorchAutograd(_Torch):
    """Raw tensors, the cost written out, `backward()`."""

    name = "torch"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the autograd gradients of the summed cost."""
        p, x, y = _tensors(case, dtype, device, grad=True)
        _cost(p, x, y, _sigmas(case)).backward()
        return _numpy({k: v.grad for k, v in p.items()})

    def _hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v by double backward through the written-out cost."""
        p, x, y = _tensors(case, dtype, device, grad=True)
        hv = _double_backward(_cost(p, x, y, _sigmas(case)), list(p.values()),
                              list(_like(v, p).values()))
        return _numpy(dict(zip(p, hv, strict=True)))


class TorchNN(_Torch):
    """nn.Sequential of nn.Linear and activation modules, nn.MSELoss(reduction="sum")."""

    name = "torch_nn"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the gradients of a Sequential model whose weights are copied from the case."""
        loss, linears = _sequential_loss(case, dtype, device)
        loss.backward()
        return _numpy({k: t.grad for k, t in _named(linears).items()})

    def _hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v by double backward through the model's parameters."""
        loss, linears = _sequential_loss(case, dtype, device)
        p = _named(linears)
        hv = _double_backward(loss, list(p.values()), list(_like(v, p).values()))
        return _numpy(dict(zip(p, hv, strict=True)))


def _sequential_loss(case: Case, dtype: str, device: str) -> tuple:
    """Return MSELoss(reduction="sum") of a Sequential whose weights are copied from the case,
    and its Linear layers."""
    torch = _torch()
    nn, dt = torch.nn, getattr(torch, dtype)
    modules = []
    for layer in case.layers:
        n_out, n_in = layer.W.shape
        modules += [nn.Linear(n_in, n_out), getattr(nn, ACTIVATIONS[layer.sigma][1])()]
    model = nn.Sequential(*modules).to(device=device, dtype=dt)
    linears = list(model)[::2]
    with torch.no_grad():
        for linear, layer in zip(linears, case.layers, strict=True):
            linear.weight.copy_(torch.tensor(layer.W, dtype=dt, device=device))
            linear.bias.copy_(torch.tensor(layer.b, dtype=dt, device=device))
    _, x, y = _tensors(case, dtype, device, grad=False)
    return nn.MSELoss(reduction="sum")(model(x), y), linears


def _named(linears: list) -> dict:
    """Return the Linear layers' parameters keyed W1, b1, …, WL, bL."""
    return {f"{k}{i}": getattr(linear, attr) for i, linear in enumerate(linears, 1)
            for k, attr in (("W", "weight"), ("b", "bias"))}


class TorchFunc(_Torch):
    """torch.func.grad of the cost as a pure function of the parameters."""

    name = "torch_func"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return torch.func.grad of the summed cost."""
        torch = _torch()
        p, x, y = _tensors(case, dtype, device, grad=False)
        return _numpy(torch.func.grad(_cost)(p, x, y, _sigmas(case)))

    def _hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v as torch.func.jvp of torch.func.grad (forward over reverse)."""
        torch = _torch()
        p, x, y = _tensors(case, dtype, device, grad=False)
        sigmas = _sigmas(case)
        grad = lambda q: torch.func.grad(_cost)(q, x, y, sigmas)  # noqa: E731
        return _numpy(torch.func.jvp(grad, (p,), (_like(v, p),))[1])
