"""Look-alike official snapshots for the tests: the same pickle structure as EG3D's and EpiGRAF's training
snapshots (persistence records carrying module source, EasyDict kwargs, torch.nn children, OmegaConf configs),
written with stand-in classes of ours registered under the official module names only while pickling."""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

PERSISTENCE_VERSION = 6


def module_source(marker: Path) -> str:
    """Source text that would leave ``marker`` behind if anything ever executed it."""
    return f"open({str(marker)!r}, 'w').write('the snapshot source was executed')\n"


def _reconstruct_eg3d(meta):  # noqa: ANN001, ANN202 - never called: readers must not run it
    raise AssertionError("the persistence reconstruct function was called")


def _reconstruct_src(meta):  # noqa: ANN001, ANN202
    raise AssertionError("the persistence reconstruct function was called")


class EasyDict(dict):
    """Stand-in of dnnlib.util.EasyDict."""


class Persistent(nn.Module):
    """Pickles like a class decorated by the official persistence module."""

    reconstruct = staticmethod(_reconstruct_eg3d)
    source = ""

    def __reduce__(self):  # noqa: ANN204
        meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=self.source,
                    class_name=type(self).__name__, state=dict(self.__dict__))
        return (type(self).reconstruct, (meta,), None)


def persistent(name: str, source: str, init_kwargs: dict | None = None, src_package: bool = False) -> nn.Module:
    """An empty persistent module of class ``name`` with the recorded ``init_kwargs``."""
    cls = type(name, (Persistent,), {"source": source,
                                     "reconstruct": staticmethod(_reconstruct_src if src_package else _reconstruct_eg3d)})
    module = cls()
    module._init_args = ()
    module._init_kwargs = dict(init_kwargs or {})
    return module


class OSGDecoder(nn.Module):
    """Stand-in of EG3D's (undecorated) decoder class, pickled by reference."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.hidden_dim = net[0].weight.shape[0]


class DictConfig:
    """Stand-in of omegaconf.DictConfig: pickled as its __dict__ (content, metadata, parent)."""


class ListConfig:
    """Stand-in of omegaconf.ListConfig."""


class AnyNode:
    """Stand-in of omegaconf.nodes.AnyNode."""


class ContainerMetadata:
    """Stand-in of omegaconf.base.ContainerMetadata."""


class Metadata:
    """Stand-in of omegaconf.base.Metadata."""


def _module(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
        if hasattr(value, "__module__"):
            try:
                value.__module__ = name
                value.__qualname__ = key
            except (AttributeError, TypeError):
                pass
    return module


@contextlib.contextmanager
def official_module_names() -> Iterator[None]:
    """Registers the stand-ins under the official module names while a snapshot is written."""
    modules = {
        "torch_utils": _module("torch_utils"),
        "torch_utils.persistence": _module("torch_utils.persistence", _reconstruct_persistent_obj=_reconstruct_eg3d),
        "dnnlib": _module("dnnlib"),
        "dnnlib.util": _module("dnnlib.util", EasyDict=EasyDict),
        "training": _module("training"),
        "training.triplane": _module("training.triplane", OSGDecoder=OSGDecoder),
        "src": _module("src"),
        "src.torch_utils": _module("src.torch_utils"),
        "src.torch_utils.persistence": _module("src.torch_utils.persistence", _reconstruct_persistent_obj=_reconstruct_src),
        "omegaconf": _module("omegaconf"),
        "omegaconf.dictconfig": _module("omegaconf.dictconfig", DictConfig=DictConfig),
        "omegaconf.listconfig": _module("omegaconf.listconfig", ListConfig=ListConfig),
        "omegaconf.nodes": _module("omegaconf.nodes", AnyNode=AnyNode),
        "omegaconf.base": _module("omegaconf.base", ContainerMetadata=ContainerMetadata, Metadata=Metadata),
    }
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_snapshot(path: Path, snapshot: object, protocol: int = 4) -> Path:
    """Pickles ``snapshot`` as the official training loop does (``pickle.dump`` of a dict)."""
    with official_module_names(), path.open("wb") as handle:
        pickle.dump(snapshot, handle, protocol=protocol)
    return path


# ------------------------------------------------------------------------------------------ networks
def _fc(source: str, out_f: int, in_f: int, gen: torch.Generator, src: bool = False, **kwargs: object) -> nn.Module:
    layer = persistent("FullyConnectedLayer", source, dict(in_features=in_f, out_features=out_f, **kwargs), src)
    layer.weight = nn.Parameter(torch.randn(out_f, in_f, generator=gen))
    layer.bias = nn.Parameter(torch.randn(out_f, generator=gen))
    return layer


def _filter() -> torch.Tensor:
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f)
    return f / f.sum()


def _synthesis_layer(source: str, cin: int, cout: int, w_dim: int, res: int, gen: torch.Generator,
                     src: bool = False, up: int = 1) -> nn.Module:
    layer = persistent("SynthesisLayer", source, dict(in_channels=cin, out_channels=cout, w_dim=w_dim,
                                                      resolution=res, up=up), src)
    layer.affine = _fc(source, cin, w_dim, gen, src, bias_init=1)
    layer.weight = nn.Parameter(torch.randn(cout, cin, 3, 3, generator=gen))
    layer.bias = nn.Parameter(torch.randn(cout, generator=gen))
    layer.noise_strength = nn.Parameter(torch.randn([], generator=gen))
    layer.register_buffer("noise_const", torch.randn(res, res, generator=gen))
    layer.register_buffer("resample_filter", _filter())
    return layer


def _torgb(source: str, cin: int, cout: int, w_dim: int, gen: torch.Generator, src: bool = False) -> nn.Module:
    layer = persistent("ToRGBLayer", source, dict(in_channels=cin, out_channels=cout, w_dim=w_dim), src)
    layer.affine = _fc(source, cin, w_dim, gen, src, bias_init=1)
    layer.weight = nn.Parameter(torch.randn(cout, cin, 1, 1, generator=gen))
    layer.bias = nn.Parameter(torch.randn(cout, generator=gen))
    return layer


def stylegan2_synthesis(source: str, w_dim: int, resolutions: list[int], channels: int, out_channels: int,
                        gen: torch.Generator, src: bool = False, name: str = "SynthesisNetwork") -> nn.Module:
    """A skip synthesis network: blocks ``b{res}`` with const/conv0/conv1/torgb, as StyleGAN2's."""
    synthesis = persistent(name, source, dict(w_dim=w_dim, channel_base=channels * resolutions[-1],
                                              channel_max=channels), src)
    for i, res in enumerate(resolutions):
        block = persistent("SynthesisBlock", source, dict(resolution=res), src)
        if i == 0:
            block.const = nn.Parameter(torch.randn(channels, res, res, generator=gen))
        else:
            block.conv0 = _synthesis_layer(source, channels, channels, w_dim, res, gen, src, up=2)
        block.conv1 = _synthesis_layer(source, channels, channels, w_dim, res, gen, src)
        block.torgb = _torgb(source, channels, out_channels, w_dim, gen, src)
        block.register_buffer("resample_filter", _filter())
        setattr(synthesis, f"b{res}", block)
    return synthesis


def mapping_network(source: str, z_dim: int, c_dim: int, w_dim: int, layers: int, gen: torch.Generator,
                    src: bool = False) -> nn.Module:
    mapping = persistent("MappingNetwork", source, dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_layers=layers,
                                                        lr_multiplier=0.01, w_avg_beta=0.998), src)
    if c_dim:
        mapping.embed = _fc(source, w_dim, c_dim, gen, src)
    for i in range(layers):
        setattr(mapping, f"fc{i}", _fc(source, w_dim, (z_dim + (w_dim if c_dim else 0)) if i == 0 else w_dim, gen,
                                       src, lr_multiplier=0.01))
    mapping.register_buffer("w_avg", torch.randn(w_dim, generator=gen))
    return mapping


EG3D_RENDERING = {
    "image_resolution": 16, "disparity_space_sampling": False, "clamp_mode": "softplus",
    "superresolution_module": "training.superresolution.SuperresolutionHybrid2X", "c_gen_conditioning_zero": False,
    "c_scale": 0.5, "superresolution_noise_mode": "none", "decoder_lr_mul": 2.0, "sr_antialias": True,
    "depth_resolution": 6, "depth_resolution_importance": 4, "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1,
    "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2],
}


def eg3d_generator(source: str, seed: int = 0) -> nn.Module:
    """A tiny EG3D TriPlaneGenerator tree: planes 3 x 4 x 8^2, 5 features, SR 8 -> 16 (2X), w 8."""
    gen = torch.Generator().manual_seed(seed)
    w_dim, features, hidden = 8, 5, 6
    kwargs = dict(z_dim=8, c_dim=25, w_dim=w_dim, img_resolution=16, img_channels=3, sr_num_fp16_res=0,
                  mapping_kwargs=EasyDict(num_layers=2), rendering_kwargs=dict(EG3D_RENDERING),
                  sr_kwargs=EasyDict(channel_base=64, channel_max=8), channel_base=64, channel_max=8,
                  num_fp16_res=0, conv_clamp=None)
    G = persistent("TriPlaneGenerator", source, kwargs)
    G.backbone = persistent("Generator", source, dict(z_dim=8, c_dim=25, w_dim=w_dim))
    G.backbone.mapping = mapping_network(source, 8, 25, w_dim, 2, gen)
    G.backbone.synthesis = stylegan2_synthesis(source, w_dim, [4, 8], 8, 12, gen)
    G.decoder = OSGDecoder(nn.Sequential(_fc(source, hidden, 4, gen, lr_multiplier=2.0), nn.Softplus(),
                                         _fc(source, 1 + features, hidden, gen, lr_multiplier=2.0)))
    sr = persistent("SuperresolutionHybrid2X", source, dict(channels=features, img_resolution=16, sr_num_fp16_res=0,
                                                            sr_antialias=True))
    sr.input_resolution = 8
    sr.sr_antialias = True
    for i, (cin, cout, res, up) in enumerate([(features, 4, 8, 1), (4, 2, 16, 2)]):
        block = persistent("SynthesisBlockNoUp" if up == 1 else "SynthesisBlock", source, dict(resolution=res))
        block.conv0 = _synthesis_layer(source, cin, cout, w_dim, res, gen, up=up)
        block.conv1 = _synthesis_layer(source, cout, cout, w_dim, res, gen)
        block.torgb = _torgb(source, cout, 3, w_dim, gen)
        setattr(sr, f"block{i}", block)
    sr.register_buffer("resample_filter", _filter())
    G.superresolution = sr
    G.rendering_kwargs = dict(EG3D_RENDERING)
    G.neural_rendering_resolution = 8
    return G.eval().requires_grad_(False)


def eg3d_snapshot(source: str, seed: int = 0) -> dict:
    """{'G', 'G_ema', 'training_set_kwargs'} as an EG3D network-snapshot-*.pkl holds them."""
    G = eg3d_generator(source, seed)
    return {"training_set_kwargs": EasyDict(resolution=16, use_labels=True), "G": G, "G_ema": G}


# ------------------------------------------------------------------------------------------ EpiGRAF
def _node(value: object, parent: object, key: str) -> object:
    if isinstance(value, dict):
        config = DictConfig()
        metadata = ContainerMetadata()
        metadata.key = key
        metadata.ref_type = None
        config._metadata, config._parent = metadata, parent
        config._content = {k: _node(v, config, k) for k, v in value.items()}
        return config
    node = AnyNode()
    metadata = Metadata()
    metadata.key = key
    node._metadata, node._parent, node._val = metadata, parent, value
    return node


def omegaconf_tree(root: dict, path: tuple[str, ...]) -> object:
    """A stand-in OmegaConf tree of ``root``; returns the node at ``path`` (which keeps its parents)."""
    node = _node(root, None, None)
    for key in path:
        node = node._content[key]
    return node


def epigraf_config(scale: float = 0.2) -> dict:
    return {
        "dataset": {"name": "ffhq_${dataset.resolution}", "resolution": 16, "cube_scale": scale, "white_back": False,
                    "last_back": False, "camera": {"fov": 12.0, "ray_start": 0.88, "ray_end": 1.12, "radius": 1.0}},
        "training": {"patch": {"enabled": True, "resolution": 8}},
        "model": {"generator": {
            "patch": "${training.patch}", "dataset": "${dataset}", "backbone": "stylegan2", "num_ray_steps": 6,
            "clamp_mode": "softplus", "density_shift": -0.5, "use_noise": True, "w_dim": 8,
            "tri_plane": {"res": 8, "feat_dim": 4, "fp32": True, "has_view_cond": False, "posenc_period_len": 0,
                          "mlp": {"n_layers": 2, "hid_dim": 6}},
            "bg_model": {"type": None}}},
    }


def epigraf_generator(source: str, seed: int = 0, config: dict | None = None) -> nn.Module:
    """A tiny EpiGRAF Generator tree (class-conditional on 2 classes): planes 3 x 4 x 8^2, decoder 4 -> 6 -> 4."""
    gen = torch.Generator().manual_seed(seed)
    cfg = omegaconf_tree(config or epigraf_config(), ("model", "generator"))
    kwargs = dict(cfg=cfg, z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3,
                  mapping_kwargs=EasyDict(num_layers=2, camera_cond=False), channel_base=64, channel_max=8,
                  num_fp16_res=0, conv_clamp=None)
    G = persistent("Generator", source, kwargs, src_package=True)
    G.cfg = cfg
    synthesis = persistent("SynthesisNetwork", source, dict(cfg=cfg, w_dim=8), src_package=True)
    synthesis.cfg = cfg
    synthesis.tri_plane_decoder = stylegan2_synthesis(source, 8, [4, 8], 8, 12, gen, src=True,
                                                      name="SynthesisBlocksSequence")
    mlp = persistent("TriPlaneMLP", source, dict(cfg=cfg, out_dim=3), src_package=True)
    mlp.model = nn.Sequential(_fc(source, 6, 4, gen, True, activation="lrelu"), _fc(source, 4, 6, gen, True))
    synthesis.tri_plane_mlp = mlp
    synthesis.bg_model = None
    G.synthesis = synthesis
    G.mapping = mapping_network(source, 8, 2, 8, 2, gen, src=True)
    G.mapping.register_buffer("mean_camera_pose", torch.tensor([1.57, 1.57, 0.0]))  # kept even without camera_cond
    return G.eval().requires_grad_(False)


def epigraf_snapshot(source: str, seed: int = 0, config: dict | None = None) -> dict:
    G = epigraf_generator(source, seed, config)
    return {"training_set_kwargs": EasyDict(resolution=16), "G": G, "G_ema": G}
