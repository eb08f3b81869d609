from .kld_loss import A2BKLDLoss, kld_divergence

__all__ = ['A2BKLDLoss', 'kld_divergence']
