from .a2bis import A2BIS
from .a2bis_ssl import A2BISSemi  # noqa: F401

__all__ = ['A2BIS']
