from .a2b_upsample_neck import A2BUpsampleNeck

__all__ = ['A2BUpsampleNeck']
