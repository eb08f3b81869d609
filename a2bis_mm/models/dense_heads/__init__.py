from .a2b_rotated_head import A2BRotatedHead

__all__ = ['A2BRotatedHead']
