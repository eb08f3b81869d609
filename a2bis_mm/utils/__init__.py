from .checkpoint import CheckpointError, load_local_checkpoint, register_checkpoint_loader

__all__ = ['CheckpointError', 'load_local_checkpoint', 'register_checkpoint_loader']
