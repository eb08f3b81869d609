from .ap50_metric import InstanceAP50Metric
from .error_metric import InstanceErrorMetric
from .pq_metric import PanopticQualityMetric

__all__ = ['InstanceAP50Metric', 'InstanceErrorMetric', 'PanopticQualityMetric']
