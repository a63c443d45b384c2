"""What a release request is expected to do, before `route` decides for certain.

The webhook receiver and `dualop release` answer at once, before the `route` flow has
classified anything. They report the expected model: the catalog's forced model, else
the latest classification recorded in the audit log, else `auto` (not yet classified;
`route` decides). `route` itself always classifies afresh; its answer is binding.
"""

from __future__ import annotations

from dualop.audit import AuditLog
from dualop.catalog import OperatingModel, Service

__all__ = ["ACTIONS", "expected_route"]

ACTIONS = {
    OperatingModel.DIGITAL.value: "paved-road",
    OperatingModel.HERITAGE.value: "queue-for-window",
    "auto": "route",
}


def expected_route(service: Service, audit: AuditLog | None) -> tuple[str, str]:
    """(model, action) for the answer of a release request (module docstring)."""
    model: str = "auto"
    if service.forced_model is not None:
        model = service.forced_model.value
    elif audit is not None:
        latest = audit.latest(service=service.name, kinds=["classification"])
        if latest is not None and latest.data.get("model") in ACTIONS:
            model = str(latest.data["model"])
    return model, ACTIONS[model]
