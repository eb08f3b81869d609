from .a2bnet import A2BNet, AtrousAttentionBlock, LayerNorm2d, spatial_softmax

__all__ = ['A2BNet', 'AtrousAttentionBlock', 'LayerNorm2d', 'spatial_softmax']
