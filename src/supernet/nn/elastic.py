"""Elastic operators: one set of weights, many active shapes.

- Elastic kernel size: the largest depthwise kernel is stored; a smaller kernel is its centre crop
  passed through a learned kernel transformation matrix (7→5, then 5→3), shared by all channels of a
  layer and initialised to the identity. Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791),
  Sec. 3.2 "Elastic Kernel Size", Fig. 3.
- Elastic width (expand ratio): the first ``c`` channels of a layer are active; channels are sorted
  by importance before width is made elastic (:mod:`supernet.nn.sorting`). Sec. 3.2 "Elastic Width".
- Dynamic batch norm: the active channels use the first ``c`` entries of the affine parameters and
  running statistics.
- Elastic group norm (``norm="gn"``): the first ``c`` affine entries, ``group_norm_groups(c)``
  groups; every conv followed by a norm standardizes its *active* weight (weight standardization,
  arXiv 1903.10520), so a subnet's convs are standardized as its static copy's are.

Slicing recomputes nothing while gradients are off and the weights are unchanged: the transformed
kernel is cached per (kernel size, parameter versions) for evaluation and search. Weights must be
changed in place through autograd-visible ops (optimizers and ``load_state_dict`` are); an edit
through ``.data`` bypasses the version counter — call :meth:`clear_cache` after one.
"""

from __future__ import annotations

import gc

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import (
    NORMS,
    MBConv,
    group_norm_groups,
    make_activation,
    standardize_weight,
)
from supernet.nn.depthwise import depthwise_conv2d
from supernet.space import make_divisible

__all__ = [
    "ElasticBatchNorm2d",
    "ElasticDepthwiseConv2d",
    "ElasticGroupNorm",
    "ElasticMBConv",
    "ElasticPointwiseConv2d",
    "ElasticSqueezeExcite",
    "cyclic_gc_paused",
    "make_elastic_norm",
    "mbconv_mid_channels",
]


class ElasticPointwiseConv2d(nn.Module):
    """1x1 convolution whose input channels follow the input and whose output channels are chosen.

    With ``standardize=True`` the active (sliced) weight is weight-standardized per output channel
    at every forward, as :class:`~supernet.nn.blocks.WSConv2d` does for the static copy.

    Shapes: ``[B, c_in <= max_in, H, W]`` → ``[B, out_channels <= max_out, H, W]``.
    Reference: weight standardization, arXiv 1903.10520, Eq. 5.
    """

    def __init__(
        self, max_in: int, max_out: int, *, bias: bool = False, standardize: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.standardize = standardize
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def sliced(
        self, in_channels: int, out_channels: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Active weight ``[out, in, 1, 1]`` and bias ``[out]`` (views of the full tensors)."""
        w = self.weight[:out_channels, :in_channels]
        b = None if self.bias is None else self.bias[:out_channels]
        return w, b

    def applied_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        """The weight ``[out, in, 1, 1]`` the forward convolves with: the slice, standardized
        when ``standardize``."""
        w, _ = self.sliced(in_channels, out_channels)
        return standardize_weight(w) if self.standardize else w

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        w, b = self.sliced(x.shape[1], out_channels)
        return F.conv2d(x, standardize_weight(w) if self.standardize else w, b)


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic kernel size and channel count.

    With ``standardize=True`` the active kernel (transformed, first ``c`` channels) is
    weight-standardized per channel at every forward.

    Shapes: ``[B, c <= max_channels, H, W]`` → ``[B, c, H / stride, W / stride]``.
    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2 and Fig. 3 (kernel transformation matrices);
    weight standardization, arXiv 1903.10520, Eq. 5.
    """

    def __init__(
        self,
        max_channels: int,
        kernel_sizes: tuple[int, ...],
        *,
        stride: int,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        self.standardize = standardize
        k_max = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, k_max, k_max))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # One matrix per step down (e.g. "7to5", "5to3"), acting on the flattened centre crop.
        self.transforms = nn.ParameterDict(
            {
                f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                for big, small in self._steps()
            }
        )
        self._cache: dict[int, tuple[tuple, torch.Tensor]] = {}

    def clear_cache(self) -> None:
        """Drop cached transformed kernels."""
        self._cache.clear()

    def _steps(self) -> list[tuple[int, int]]:
        """Transformation steps from the largest kernel down, e.g. ``[(7, 5), (5, 3)]``."""
        ks = self.kernel_sizes
        return [(ks[i], ks[i - 1]) for i in range(len(ks) - 1, 0, -1)]

    def kernel(self, kernel_size: int) -> torch.Tensor:
        """The full-channel kernel ``[max_channels, 1, k, k]`` for ``kernel_size``.

        Raises:
            ValueError: when ``kernel_size`` is not one of ``kernel_sizes``.
        """
        if kernel_size not in self.kernel_sizes:
            raise ValueError(
                f"kernel_size = {kernel_size} is not allowed; choose from {self.kernel_sizes}"
            )
        if torch.is_grad_enabled():
            self._cache.clear()
            return self._transform(kernel_size)
        # Identity, dtype, device and version of every input tensor: in-place updates (optimizer
        # steps, load_state_dict) bump the version; .to()/.double() swap the storage.
        versions = tuple(
            (p.data_ptr(), p.dtype, p.device, p._version)
            for p in (self.weight, *self.transforms.values())
        )
        hit = self._cache.get(kernel_size)
        if hit is None or hit[0] != versions:
            hit = (versions, self._transform(kernel_size))
            self._cache[kernel_size] = hit
        return hit[1]

    def _transform(self, kernel_size: int) -> torch.Tensor:
        w = self.weight
        for big, small in self._steps():
            if big <= kernel_size:
                break
            start = (big - small) // 2
            crop = w[:, :, start : start + small, start : start + small]
            flat = crop.reshape(-1, small * small)
            w = F.linear(flat, self.transforms[f"{big}to{small}"]).view(-1, 1, small, small)
        return w

    def applied_weight(self, kernel_size: int, channels: int) -> torch.Tensor:
        """The kernel ``[channels, 1, k, k]`` the forward convolves with: the transformed kernel's
        first ``channels``, standardized when ``standardize``.

        Raises:
            ValueError: when ``kernel_size`` is not one of ``kernel_sizes``.
        """
        w = self.kernel(kernel_size)[:channels]
        return standardize_weight(w) if self.standardize else w

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        c = x.shape[1]
        w = self.applied_weight(kernel_size, c)
        return depthwise_conv2d(x, w, self.stride, kernel_size // 2)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first ``c`` channels of its parameters and running statistics.

    Shapes: ``[B, c <= num_features, H, W]`` → same.
    Reference: Once-for-All released code ("DynamicBatchNorm2d"); statistics are re-calibrated per
    subnet before evaluation (:mod:`supernet.train.bn`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c] if self.running_mean is not None else None,
            self.running_var[:c] if self.running_var is not None else None,
            self.weight[:c],
            self.bias[:c],
            use_batch,
            momentum,
            self.eps,
        )


class ElasticGroupNorm(nn.GroupNorm):
    """Group norm over the first ``c`` channels of its affine parameters, with
    ``group_norm_groups(c)`` groups (8 channels per group where ``c`` allows).

    With active widths that are multiples of 8 (every MBConv hidden width is, see
    :func:`mbconv_mid_channels`) the groups of a narrower subnet are the first groups of the full
    width. No running statistics: train and eval mode compute the same.

    Shapes: ``[B, c <= num_channels, H, W]`` → same.
    Reference: Wu & He, "Group Normalization" (ECCV'18, arXiv 1803.08494), Eq. 1-3; 8 channels per
    group as in TinyTL (arXiv 2007.11622), Sec. 3.2.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__(group_norm_groups(num_channels), num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.group_norm(x, group_norm_groups(c), self.weight[:c], self.bias[:c], self.eps)


def make_elastic_norm(kind: str, channels: int) -> nn.Module:
    """``"bn"`` → :class:`ElasticBatchNorm2d`; ``"gn"`` → :class:`ElasticGroupNorm`.

    Raises:
        ConfigError: ``kind`` is not one of :data:`~supernet.nn.blocks.NORMS`.
    """
    if kind == "bn":
        return ElasticBatchNorm2d(channels)
    if kind == "gn":
        return ElasticGroupNorm(channels)
    raise ConfigError(f"norm = {kind!r} is not allowed; choose from {NORMS}")


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-and-excitation whose channel count follows the input; the hidden width is
    ``make_divisible(c // 4, 8)``.

    Shapes: ``[B, c <= max_channels, H, W]`` → same.
    """

    reduction = 4

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        max_mid = make_divisible(max_channels // self.reduction, 8)
        self.reduce = ElasticPointwiseConv2d(max_channels, max_mid, bias=True)
        self.expand = ElasticPointwiseConv2d(max_mid, max_channels, bias=True)

    @classmethod
    def mid_channels(cls, channels: int) -> int:
        """SE hidden width for ``channels`` input channels."""
        return make_divisible(channels // cls.reduction, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s, self.mid_channels(c)))
        return x * F.hardsigmoid(self.expand(s, c))


def mbconv_mid_channels(in_channels: int, expand_ratio: float) -> int:
    """Hidden width of an MBConv block: ``make_divisible(round(in_channels * expand_ratio), 8)``.

    The one place the rounding rule lives: supernet blocks, extracted subnets and the analytic
    cost models all call it.
    """
    return make_divisible(round(in_channels * expand_ratio), 8)


class ElasticMBConv(nn.Module):
    """MBConv block with elastic kernel size and expand ratio (fixed input/output channels).

    ``norm="bn"``: elastic batch norms; ``norm="gn"``: elastic group norms, and the expand,
    depthwise and project convs standardize their active weights (the SE convs, not followed by a
    norm, do not). The norms keep the names ``expand_bn``, ``depthwise_bn`` and ``project_bn``
    for either kind, so state-dict keys do not depend on it.

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, H / stride, W / stride]``.
    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2; MobileNetV3 blocks (arXiv 1905.02244);
    group norm + weight standardization as in TinyTL, arXiv 2007.11622, Sec. 3.2.

    Raises:
        ConfigError: ``norm`` is not one of :data:`~supernet.nn.blocks.NORMS`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_sizes: tuple[int, ...],
        expand_ratios: tuple[int, ...],
        stride: int,
        act: str,
        use_se: bool,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes, self.expand_ratios = tuple(kernel_sizes), tuple(expand_ratios)
        self.act_name, self.norm = act, norm
        max_mid = self.mid_channels(max(expand_ratios))
        if norm not in NORMS:
            raise ConfigError(f"norm = {norm!r} is not allowed; choose from {NORMS}")
        ws = norm == "gn"  # registration order is forward order: conv, norm, ...
        self.expand_conv = ElasticPointwiseConv2d(in_channels, max_mid, standardize=ws)
        self.expand_bn = make_elastic_norm(norm, max_mid)
        self.depthwise_conv = ElasticDepthwiseConv2d(
            max_mid, kernel_sizes, stride=stride, standardize=ws
        )
        self.depthwise_bn = make_elastic_norm(norm, max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.project_conv = ElasticPointwiseConv2d(max_mid, out_channels, standardize=ws)
        self.project_bn = make_elastic_norm(norm, out_channels)
        self.act = make_activation(act)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.active_kernel_size = max(kernel_sizes)
        self.active_expand_ratio = max(expand_ratios)
        # Static MBConv skeletons on the meta device for to_static (a plain dict: not submodules).
        self._static_skeletons: dict[tuple[int, int], _Skeleton] = {}

    def mid_channels(self, expand_ratio: float) -> int:
        """Hidden width for an expand ratio (see :func:`mbconv_mid_channels`)."""
        return mbconv_mid_channels(self.in_channels, expand_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.mid_channels(self.active_expand_ratio)
        out = self.act(self.expand_bn(self.expand_conv(x, mid)))
        out = self.act(self.depthwise_bn(self.depthwise_conv(out, self.active_kernel_size)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out, self.out_channels))
        return x + out if self.use_residual else out

    @torch.no_grad()
    def to_static(self, kernel_size: int, expand_ratio: int) -> MBConv:
        """A plain :class:`MBConv` (of the same ``norm``) holding copies of the active weights
        and norm parameters (and BN statistics)."""
        mid = self.mid_channels(expand_ratio)
        key = (kernel_size, expand_ratio)
        skeleton = self._static_skeletons.get(key)
        if skeleton is None:  # built once per (kernel size, expand ratio), without storage
            se_mid = ElasticSqueezeExcite.mid_channels(mid) if self.se is not None else None
            with torch.device("meta"):
                prototype = MBConv(
                    self.in_channels,
                    self.out_channels,
                    kernel_size=kernel_size,
                    stride=self.stride,
                    mid_channels=mid,
                    act=self.act_name,
                    se_mid_channels=se_mid,
                    norm=self.norm,
                )
            skeleton = _Skeleton(prototype)
            self._static_skeletons[key] = skeleton
        # Every parameter and buffer the clone shares with the meta prototype is replaced below,
        # each with one narrow_copy (slice and copy in one op: half the dispatch cost of
        # slice + clone for these small tensors).
        new, at = skeleton.clone(self.training), skeleton.positions
        sub = self._modules  # submodules read once: Module.__getattr__ is a Python call each
        _set_conv(new[at["expand.0"]], sub["expand_conv"], mid, self.in_channels)
        _set_norm(new[at["expand.1"]], sub["expand_bn"], mid)
        kernel = sub["depthwise_conv"].kernel(kernel_size)
        new[at["depthwise.0"]]._parameters["weight"] = nn.Parameter(kernel.narrow_copy(0, 0, mid))
        _set_norm(new[at["depthwise.1"]], sub["depthwise_bn"], mid)
        se = sub.get("se")  # None: not a submodule
        if se is not None:
            se_mid = ElasticSqueezeExcite.mid_channels(mid)
            _set_conv(new[at["se.reduce"]], se._modules["reduce"], se_mid, mid)
            _set_conv(new[at["se.expand"]], se._modules["expand"], mid, se_mid)
        _set_conv(new[at["project.0"]], sub["project_conv"], self.out_channels, mid)
        _set_norm(new[at["project.1"]], sub["project_bn"], self.out_channels)
        return new[0]  # type: ignore[return-value]


class _Skeleton:
    """A static module tree flattened in pre-order, for cloning without recursion.

    Written here instead of ``copy.deepcopy`` or the modules' constructors: subnet extraction
    builds a few hundred modules, and profiling ``get_subnet`` on ``ofa-mbv3`` showed the
    constructors' random weight init and deepcopy's generic recursion taking most of its time.
    Only each module's own containers are copied (parameters, buffers, submodules, hook and
    attribute dicts/sets); other attribute values are shared, as plain configuration. Tensors
    are shared with the source tree: the caller copies or replaces them.

    ``positions`` maps each module's qualified name (``""`` for the root, ``"expand.0"``, ...)
    to its index in the list :meth:`clone` returns.
    """

    __slots__ = ("entries", "positions")

    def __init__(self, root: nn.Module) -> None:
        self.entries: list[tuple[nn.Module, int, str, tuple[str, ...]]] = []
        positions: dict[str, int] = {}
        stack: list[tuple[nn.Module, int, str, str]] = [(root, -1, "", "")]
        while stack:
            module, parent, name, path = stack.pop()
            here = positions[path] = len(self.entries)
            containers = tuple(
                key
                for key, value in module.__dict__.items()
                if isinstance(value, dict | set | list)
            )
            self.entries.append((module, parent, name, containers))
            children = [(n, c) for n, c in module._modules.items() if c is not None]
            for child_name, child in reversed(children):  # pre-order: first child popped first
                stack.append(
                    (child, here, child_name, f"{path}.{child_name}" if path else child_name)
                )
        self.positions = positions

    def clone(self, training: bool | None) -> list[nn.Module]:
        """New modules in pre-order (``[0]`` is the root), each ``training`` set to ``training``
        (``None``: kept)."""
        out: list[nn.Module] = []
        for module, parent, name, containers in self.entries:
            state = module.__dict__.copy()
            for key in containers:
                state[key] = state[key].copy()
            if training is not None:
                state["training"] = training
            new = object.__new__(type(module))
            new.__dict__.update(state)
            if parent >= 0:
                out[parent]._modules[name] = new
            out.append(new)
        return out


# The setters below write into the skeleton's parameter and buffer dicts, whose keys the
# prototype already holds, instead of going through ``Module.__setattr__`` (its checks cost more
# than the copies for the small layers of a subnet), and read the elastic layer's tensors from its
# own dicts (``Module.__getattr__`` is a Python call per attribute).


def _set_conv(conv: nn.Module, src: nn.Module, out_channels: int, in_channels: int) -> None:
    """Give a skeleton static 1x1 conv copies of the first ``out_channels`` outputs and
    ``in_channels`` inputs of an elastic pointwise conv's weight and bias."""
    weight, bias = src._parameters["weight"], src._parameters.get("bias")
    params = conv._parameters
    if in_channels < weight.shape[1]:
        # narrow_copy of a contiguous source along dim 1 (the first rows of a contiguous tensor
        # are contiguous): half the time of narrow_copy on an input-sliced (strided) view, and
        # a serial copy where clone starts the intra-op thread pool for these mid-size weights.
        if out_channels < weight.shape[0]:
            weight = weight.narrow(0, 0, out_channels)
        params["weight"] = nn.Parameter(weight.narrow_copy(1, 0, in_channels))
    else:
        params["weight"] = nn.Parameter(weight.narrow_copy(0, 0, out_channels))
    if bias is not None:
        params["bias"] = nn.Parameter(bias.narrow_copy(0, 0, out_channels))


def _set_norm(norm: nn.Module, src: nn.Module, channels: int) -> None:
    """Give a skeleton static batch or group norm copies of the first ``channels`` of an elastic
    one (affine parameters, and for batch norm the running statistics)."""
    params, src_params = norm._parameters, src._parameters
    params["weight"] = nn.Parameter(src_params["weight"].narrow_copy(0, 0, channels))
    params["bias"] = nn.Parameter(src_params["bias"].narrow_copy(0, 0, channels))
    if norm.eps != src.eps:
        norm.eps = src.eps
    if isinstance(norm, nn.GroupNorm):
        assert norm.num_groups == group_norm_groups(channels)
        return
    buffers, src_buffers = norm._buffers, src._buffers
    buffers["running_mean"] = src_buffers["running_mean"].narrow_copy(0, 0, channels)
    buffers["running_var"] = src_buffers["running_var"].narrow_copy(0, 0, channels)
    buffers["num_batches_tracked"] = src_buffers["num_batches_tracked"].clone()
    if norm.momentum != src.momentum:
        norm.momentum = src.momentum


class cyclic_gc_paused:  # lower case: used like a function, ``with cyclic_gc_paused():``
    """Context manager: pause Python's cyclic garbage collector while an acyclic module tree is
    built; re-enable it on exit only if it was enabled. Reference counting still frees objects
    as usual.

    Why: an ``ofa-mbv3`` subnet is ~5,900 objects the collector tracks (~260 modules, each
    holding about a dozen dicts). Allocating them triggers collections that promote the
    half-built tree to older generations, and then full collections that walk the whole heap
    (~170k objects beside an ``ofa-mbv3`` supernet). A module tree has no reference cycles, so
    the collector has nothing to find in it. Measured on the 2-core VM, ``get_subnet`` in a
    loop over random ``ofa-mbv3`` configs: 5.5 collections and 3.7 ms in the collector per
    subnet without the pause; 0.9 collections and ~1.1 ms when the pause ended before the last
    allocation in ``get_subnet``; 0.01 collections and < 0.01 ms with this class (the loop
    drops each subnet, which reference counting frees before the next collection is due).

    A class rather than ``contextlib.contextmanager``: a generator-based manager allocates its
    ``StopIteration`` *after* the collector is re-enabled, and that allocation alone starts a
    collection that walks the just-built tree. Here ``__exit__`` re-enables the collector as its
    last step and allocates nothing after it, so the next collection happens at the caller's
    next allocation (it walks the tree once if the caller keeps it, and finds it freed if not).
    """

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._was_enabled:
            gc.enable()


# torch._lazy_clone is private and undocumented (copy-on-write storage, pytorch/pytorch#113397);
# an eager copy where a torch lacks it.
_lazy_clone = getattr(torch, "_lazy_clone", torch.clone)


def clone_module(
    module: nn.Module,
    *,
    copy_tensors: bool = True,
    training: bool | None = None,
    copy_on_write: bool = False,
) -> nn.Module:
    """A copy of a static module tree: the same classes and attributes, each parameter and buffer
    cloned (``copy_tensors=True``) or shared (``False``, for skeletons whose tensors the caller
    replaces), every module's ``training`` set to ``training`` (default: kept). See
    :class:`_Skeleton` for what is copied and why this is not ``copy.deepcopy``.

    ``copy_on_write=True`` makes each copy a lazy clone (``torch._lazy_clone``, where this torch
    has it; a plain ``clone`` otherwise): a tensor with its own storage that shares the source's
    memory until either of them is written, and a write through either first copies the data
    (PyTorch's copy-on-write storage: tensors still alias if and only if they share a storage).
    The copy behaves as a ``clone`` (in-place updates, optimizer steps and ``load_state_dict`` on
    either side leave the other unchanged), but costs no bytes until then. Reading the mutable
    pointer (``data_ptr()``, numpy views) also makes the copy real.
    """
    modules = _Skeleton(module).clone(training)
    if copy_tensors:
        copy = _lazy_clone if copy_on_write else torch.clone
        for new in modules:
            params, buffers = new._parameters, new._buffers
            for name, p in params.items():
                if p is not None:
                    params[name] = nn.Parameter(copy(p.detach()), requires_grad=p.requires_grad)
            for name, b in buffers.items():
                if b is not None:
                    buffers[name] = copy(b)
    return modules[0]
