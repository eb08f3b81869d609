from .a2bis_head import A2BBranch, A2BISHead

__all__ = ['A2BISHead', 'A2BBranch']
