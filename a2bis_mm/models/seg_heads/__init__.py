from .a2b_seg_head import A2BSegHead
from .a2b_skeleton_head import A2BSkeletonHead

__all__ = ['A2BSkeletonHead', 'A2BSegHead']
