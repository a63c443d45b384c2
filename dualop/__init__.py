"""dualop: release pipelines for the dual operating model, on Prefect 3."""

from dualop.exceptions import DualopError

__all__ = ["DualopError"]
