"""Tests of the A2BNet backbone (docs/model.md, backbone and decision D1)."""
import math

import pytest
import torch
from mmdet.registry import MODELS

import a2bis_mm.models  # noqa: F401  (registers A2BNet)
from a2bis_mm.models.backbones import A2BNet, AtrousAttentionBlock, LayerNorm2d, spatial_softmax


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def block_params(c_in: int, c_out: int, n: int, n_dil_convs: int) -> int:
    """The reference's per-block parameter formula; ``n_dil_convs`` is 3 (k, q, v) or 1 (no ASA, v only)."""
    d = c_out // 2
    return (2 * c_in + n * (c_in * d + d + n_dil_convs * (9 * d * d + d))
            + 9 * (c_in + n * d) * c_out + c_out + 2 * d + 2 * c_out)


@pytest.mark.parametrize('arch,expected', [('T', 604_256), ('S', 4_412_224), ('B', 17_626_752),
                                           ('L', 41_774_784)])
def test_param_counts_match_spec(arch, expected):
    # Built on the meta device: counting only, no memory and no init cost (L has 42 M weights).
    with torch.device('meta'):
        model = MODELS.build(dict(type='A2BNet', arch=arch))
    assert num_params(model) == expected


def test_per_block_params_of_b_match_spec():
    with torch.device('meta'):
        model = A2BNet(arch='B')
    assert [num_params(s) for s in model.stages] == [230_272, 829_056, 3_312_896, 13_244_928]


def test_no_asa_param_count_from_formula():
    with torch.device('meta'):
        model = A2BNet(arch='T', with_attention=False)
    channels, num_asa = [16, 32, 64, 128], [2, 2, 2, 2]
    stem = 3 * 7 * 7 * 16 + 16 + 2 * 16
    blocks = sum(
        block_params(c_in, c_out, n, n_dil_convs=1)
        for c_in, c_out, n in zip([16] + channels[:-1], channels, num_asa))
    assert num_params(model) == stem + blocks
    # The attention adds exactly two 3x3 d->d convs (k, q) per branch.
    keys_queries = sum(n * 2 * (9 * (c // 2)**2 + c // 2) for c, n in zip(channels, num_asa))
    assert num_params(model) + keys_queries == 604_256


def test_stem_kernel_3_and_custom_arch():
    with torch.device('meta'):
        k3 = A2BNet(arch='T', stem_kernel=3)
        custom = A2BNet(arch=dict(channels=[16, 32, 64, 128], num_asa=[2, 2, 2, 2]))
    assert num_params(k3) == 604_256 - (49 - 9) * 3 * 16
    assert num_params(custom) == 604_256
    assert custom.out_channels == 128


def test_output_shape_t():
    model = A2BNet(arch='T')
    model.init_weights()
    outs = model(torch.rand(2, 3, 64, 64))
    assert isinstance(outs, tuple) and len(outs) == 1
    assert outs[0].shape == (2, model.out_channels, 32, 32) == (2, 128, 32, 32)


def test_tf_same_padding_matches_manual_pad():
    torch.manual_seed(0)
    model = A2BNet(arch='T', tf_same_padding=True)
    assert model.stem_pad == (2, 3, 2, 3)
    assert A2BNet(arch='T', stem_kernel=3, tf_same_padding=True).stem_pad == (0, 1, 0, 1)
    x = torch.rand(1, 3, 32, 32)
    stem = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 3, 2, 3)), model.stem.weight, model.stem.bias, stride=2)
    seen = {}
    model.stem.register_forward_hook(lambda m, i, o: seen.update(out=o))
    assert model(x)[0].shape == (1, 128, 16, 16)
    torch.testing.assert_close(seen['out'], stem)


def test_keras_init():
    torch.manual_seed(0)
    model = A2BNet(arch='T')
    model.init_weights()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.in_channels * math.prod(module.kernel_size)
            fan_out = module.out_channels * math.prod(module.kernel_size)
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert module.weight.abs().max() <= bound, name
            # Xavier-uniform fills [-bound, bound]; PyTorch's default bound is <= 0.58 of it here.
            assert module.weight.abs().max() > 0.8 * bound, name
            assert torch.all(module.bias == 0), name
        elif isinstance(module, LayerNorm2d):
            assert module.eps == 1e-3 and torch.all(module.weight == 1), name


def test_layernorm2d_normalises_channels():
    x = torch.randn(2, 5, 3, 4) * 10 + 3
    y = LayerNorm2d(5, eps=1e-3)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5, rtol=0)
    var = x.var(1, unbiased=False)
    torch.testing.assert_close(y.var(1, unbiased=False), var / (var + 1e-3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\).*\(5, 3\)'):
        LayerNorm2d(5)(torch.zeros(5, 3))


def test_spatial_softmax_sums_to_one_in_fp32():
    x = torch.randn(2, 3, 16, 16) * 20
    with torch.autocast('cpu', dtype=torch.bfloat16):
        a = spatial_softmax(x.bfloat16())
    assert a.dtype == torch.float32
    torch.testing.assert_close(a.sum((2, 3)), torch.ones(2, 3))
    torch.testing.assert_close(a, torch.softmax(x.bfloat16().float().flatten(2), -1).view_as(x))


def test_block_branch_is_softmax_attention():
    """LN_upd receives u = softmax_HW(k*q) * v of each branch with dilation n (docs/model.md, backbone)."""
    torch.manual_seed(0)
    block = AtrousAttentionBlock(8, 16, num_asa=2)
    block.init_weights()
    assert [c.dilation for c in block.keys] == [(1, 1), (2, 2)]
    inputs = []
    hook = block.ln_upd.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    x = torch.randn(1, 8, 12, 12)
    y = block(x)
    hook.remove()
    assert y.shape == (1, 16, 12, 12) and len(inputs) == 2
    x_n = block.ln_in(x)
    for n in range(2):
        t = torch.relu(block.reduces[n](x_n))
        attn = spatial_softmax(torch.relu(block.keys[n](t)) * torch.relu(block.queries[n](t)))
        torch.testing.assert_close(attn.sum((2, 3)), torch.ones(1, 8))
        torch.testing.assert_close(inputs[n], attn * torch.relu(block.values[n](t)))
    # No additive residual: the output is LN_out of the fused conv.
    fused = block.fuse(torch.cat([x_n] + [block.ln_upd(u) for u in inputs], 1))
    torch.testing.assert_close(y, block.ln_out(torch.relu(fused)))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = A2BNet(arch='T')
    model.init_weights()
    out = model(torch.rand(1, 3, 24, 24))[0]
    # A random projection: a plain sum of a LayerNorm output has zero gradient upstream.
    (out * torch.randn_like(out)).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bf16_autocast_forward_is_finite():
    torch.manual_seed(0)
    model = A2BNet(arch='T')
    model.init_weights()
    x = torch.rand(1, 3, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)[0]
    assert out.shape == (1, 128, 16, 16)
    assert torch.isfinite(out).all()
    assert out.float().std() > 0.1  # LN_out output, not collapsed to zeros


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='XL'), r"arch must be one of \['B', 'L', 'S', 'T'\].*'XL'"),
    (dict(arch=dict(channels=[16, 32])), 'exactly the keys channels and num_asa'),
    (dict(arch=dict(channels=[16, 32], num_asa=[2, 2])), '4 stages'),
    (dict(stem_kernel=5), 'stem_kernel must be 3 or 7, got 5'),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        A2BNet(**kwargs)
