"""tickvault.monitoring: metrics (``metrics``), the /metrics /health /ready /alerts server
(``server``), ready checks (``checks``), host sizing (``tune``) and deploy/ validation
(``deploy_check``). See docs/operations.md."""

from tickvault.monitoring.metrics import Metrics, get_metrics

__all__ = ["Metrics", "get_metrics"]
