from .a2bis import A2BIS

__all__ = ['A2BIS']
