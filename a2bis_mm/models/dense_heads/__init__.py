from .a2b_fullres_branch import A2BFullResBranch
from .a2bis_head import A2BBranch, A2BISHead

__all__ = ['A2BISHead', 'A2BBranch', 'A2BFullResBranch']
