"""a2bis-mm: A2B-IS instance segmentation for microscopy on MMDetection 3 / MMRotate 1."""
__version__ = '0.1.0'
