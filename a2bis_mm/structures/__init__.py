from .rbox import mask_to_rbox, masks_to_rboxes

__all__ = ['mask_to_rbox', 'masks_to_rboxes']
