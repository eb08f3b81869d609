from .ap50_metric import InstanceAP50Metric
from .pq_metric import PanopticQualityMetric

__all__ = ['InstanceAP50Metric', 'PanopticQualityMetric']
