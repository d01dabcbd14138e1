"""/api/v1/devices: a device and its certificates."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from ca_service.api.auth import ANY_ROLE, SECURITY, principal, require, services
from ca_service.api.schemas import DeviceSchema, ProblemSchema

blp = Blueprint("devices", __name__, url_prefix="/api/v1", description="Devices, known by their MAC")


@blp.route("/devices/<string:mac>")
class Device(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, DeviceSchema)
    @blp.alt_response(
        404, schema=ProblemSchema, description="Unknown device", content_type="application/problem+json"
    )
    @require(*ANY_ROLE)
    def get(self, mac: str) -> Any:
        """A device by MAC (any common spelling) with its certificates, current and past."""
        return services().enrollment.device(mac, principal())
