"""/api/v1/devices: devices, their keys made by the service, their provisioning step; bulk import."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from ca_service.api import examples
from ca_service.api.auth import ANY_ROLE, WRITERS, principal, require, services
from ca_service.api.idempotency import idempotent, writes
from ca_service.api.openapi import TEXT, Blueprint, problem_docs, upload
from ca_service.api.problems import accepts, page_window
from ca_service.api.schemas import (
    CredentialRequestSchema,
    DeliverySchema,
    DeviceChangeSchema,
    DeviceQuerySchema,
    DeviceRegisterSchema,
    DeviceSchema,
    DeviceSummarySchema,
    ImportReportSchema,
    ProvisioningRequestSchema,
)
from ca_service.enrollment import provisioning_xml
from ca_service.enrollment.credentials import Delivery
from ca_service.enrollment.devices import csv_lines

blp = Blueprint("devices", __name__, url_prefix="/api/v1", description="Devices, known by their MAC")

XML = "application/xml"
CSV = "text/csv"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/devices")
class Devices(MethodView):
    @blp.doc(operationId="registerDevice")
    @blp.arguments(
        DeviceRegisterSchema, example={k: v for k, v in examples.DEVICE_SUMMARY.items() if k != "created_at"}
    )
    @blp.response(201, DeviceSchema, example={**examples.DEVICE, "certificates": [], "certificates_total": 0})
    @problem_docs(
        (403, "The MAC is outside the token's scope"),
        (409, "Already registered"),
        (422, "Not a device MAC, or more than 32 labels"),
    )
    @require(*WRITERS)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a device.

        MAC in any common spelling (stored as 12 uppercase hex digits), model, firmware and free
        labels. ``Location`` names the new device.
        """
        device = services().devices.register(
            principal(), body["mac"], model=body["model"], firmware=body["firmware"], labels=body["labels"]
        )
        return device, 201, {"Location": f"/api/v1/devices/{device.mac}"}

    @blp.doc(operationId="listDevices")
    @blp.response(200, DeviceSummarySchema(many=True), example=[examples.DEVICE_SUMMARY])
    @blp.paginate()
    @require(*ANY_ROLE)
    def get(self, pagination_parameters: Any) -> Any:
        """List the devices in the token's scope.

        By MAC; paginated (``page``, ``page_size``; the total is in ``X-Pagination``).
        """
        items, total = services().devices.page(principal(), *page_window(pagination_parameters))
        pagination_parameters.item_count = total
        return items


@blp.route("/devices/<string:mac>")
class Device(MethodView):
    @blp.doc(operationId="getDevice")
    @blp.arguments(DeviceQuerySchema, location="query")
    @blp.response(200, DeviceSchema, example=examples.DEVICE)
    @problem_docs((404, "Unknown device, or one outside the token's scope"), (422, "Not a device MAC"))
    @require(*ANY_ROLE)
    def get(self, query: dict[str, Any], mac: str) -> Any:
        """A device with a page of its certificates.

        The MAC in any common spelling. Its certificates, current and past, newest first
        (``page``, ``page_size`` up to 100; ``certificates_total`` counts all).
        """
        size = query["page_size"]
        return services().enrollment.device(mac, principal(), offset=(query["page"] - 1) * size, limit=size)

    @blp.doc(operationId="changeDevice")
    @blp.arguments(
        DeviceChangeSchema, example={"firmware": "2.60.0", "labels": {"site": None, "room": "3.14"}}
    )
    @blp.response(200, DeviceSchema, example=examples.DEVICE)
    @problem_docs(
        (403, "The MAC is outside the token's scope"),
        (404, "Unknown device"),
        (422, "Not a device MAC, or more than 32 labels"),
    )
    @require(*WRITERS)
    def patch(self, body: dict[str, Any], mac: str) -> Any:
        """Change a device's model, firmware or labels.

        Members left out stay as they are; a label whose value is null is removed.
        """
        return services().devices.change(principal(), mac, body)


@blp.route("/devices/<string:mac>/credentials")
class Credentials(MethodView):
    @blp.doc(operationId="makeCredentials")
    @blp.arguments(CredentialRequestSchema, example={"key_type": "ec-p256", "bind_user_agent": True})
    @blp.response(201, DeliverySchema, example=examples.DELIVERY)
    @problem_docs(
        (403, "The MAC is outside the token's scope"),
        (404, "Unknown device or profile"),
        (422, "Not a device MAC, or the key type is refused by the profile"),
        (429, "An issuance rate limit is reached; see Retry-After"),
        (410, "A retry (same Idempotency-Key) after the delivery was downloaded, replaced or expired"),
    )
    @require(*WRITERS)
    @idempotent(lambda serial: _made(services().credentials.delivery_of(serial, principal())))
    def post(self, body: dict[str, Any], mac: str) -> Any:
        """Make a key and a certificate for a device.

        The answer carries a certificate URL (fetchable until it expires) and a key URL (works
        once); the key exists only wrapped and only until it is downloaded or the URL expires.
        With an ``Idempotency-Key`` a retry answers the same delivery (while its key waits)
        instead of making a second key.
        """
        delivery = services().credentials.create(
            mac,
            principal(),
            profile=body["profile"],
            key_type=body["key_type"],
            bind_user_agent=body["bind_user_agent"],
            also=writes(),
        )
        return _made(delivery)


def _made(delivery: Delivery) -> tuple[Delivery, int, dict[str, str]]:
    return delivery, 201, {"Cache-Control": "no-store"}


@blp.route("/devices/<string:mac>/provisioning.xml")
@blp.doc(operationId="getProvisioningDocument")
@blp.response(
    200,
    TEXT,
    content_type=XML,
    description="Gigaset provisioning document",
    example=examples.PROVISIONING_XML,
)
@problem_docs(
    (403, "The MAC is outside the token's scope"), (404, "Unknown device"), (422, "Not a device MAC")
)
@require(*WRITERS)
def provisioning_document(mac: str) -> Response:
    """A complete Gigaset provisioning document for a device.

    Its ``certificate`` step points at the URLs of the delivery waiting for the device (the
    same URLs on every call, until the key is downloaded or they expire); otherwise the document
    has no step. Only reads: prepare a step with ``POST /devices/{mac}/provisioning-step``.
    """
    delivery = services().credentials.pending(mac, principal())
    return _no_store(Response(provisioning_xml.document(delivery), mimetype=XML))


@blp.route("/devices/<string:mac>/provisioning-step")
class ProvisioningStep(MethodView):
    @blp.doc(operationId="getProvisioningStep")
    @blp.response(
        200,
        TEXT,
        content_type=XML,
        description="Only the <step .../> element",
        example=examples.PROVISIONING_STEP,
    )
    @blp.alt_response(
        204, description="No delivery waiting: nothing prepared, or the key was fetched", success=True
    )
    @problem_docs(
        (403, "The MAC is outside the token's scope"), (404, "Unknown device"), (422, "Not a device MAC")
    )
    @require(*WRITERS)
    def get(self, mac: str) -> Response:
        """The ``certificate`` step of the delivery waiting for a device.

        Only the ``<step type="certificate" .../>`` element (the same URLs on every call), or
        204 when none waits. Only reads.
        """
        delivery = services().credentials.pending(mac, principal())
        if delivery is None:
            return _no_store(Response(status=204))
        return _no_store(Response(provisioning_xml.step_xml(delivery), mimetype=XML))

    @blp.doc(operationId="prepareProvisioningStep")
    @blp.arguments(ProvisioningRequestSchema, example={"key_type": "ec-p256", "fresh_urls": False})
    @blp.response(
        201, DeliverySchema, description="A new key and certificate were made", example=examples.DELIVERY
    )
    @blp.alt_response(
        200,
        schema=DeliverySchema,
        description="The delivery already waiting",
        example=examples.DELIVERY,
        success=True,
    )
    @blp.alt_response(
        204, description="Nothing due: the device has its key, renewal not yet due", success=True
    )
    @problem_docs(
        (403, "The MAC is outside the token's scope"),
        (404, "Unknown device or profile"),
        (422, "Not a device MAC, or the key type is refused by the profile"),
        (429, "An issuance rate limit is reached; see Retry-After"),
    )
    @require(*WRITERS)
    def post(self, body: dict[str, Any], mac: str) -> Any:
        """Prepare a device's next ``certificate`` step; the GETs then serve it.

        No key made yet, the last one revoked, or its download expired undelivered: a new key
        and certificate (201). Its key still waiting: that delivery (200), with new URLs when
        ``fresh_urls`` is set (the unused old ones expire). Key delivered and the certificate in
        its renewal window: a new key and certificate that supersede it (201). Otherwise 204.
        Concurrent calls for one device make one key.
        """
        step = services().credentials.provision(
            mac,
            principal(),
            profile=body["profile"],
            key_type=body["key_type"],
            fresh_urls=body["fresh_urls"],
        )
        if step.delivery is None:
            return _no_store(Response(status=204))
        return step.delivery, 201 if step.made else 200, {"Cache-Control": "no-store"}


@blp.route("/device-imports", methods=["POST"])
@accepts(CSV, limit_setting="max_import_bytes")
@blp.doc(
    operationId="importDevices", requestBody={**upload(CSV, example=examples.DEVICE_CSV), "required": True}
)
@blp.response(200, ImportReportSchema, example=examples.IMPORT_REPORT)
@problem_docs(
    (400, "Not a CSV with a 'mac' column"),
    (413, "Larger than max_import_bytes (default 8 MiB)"),
    (415, "Not text/csv"),
)
@require(*WRITERS)
def device_import() -> Any:
    """Register devices from a CSV file.

    ``text/csv``, header row: ``mac`` required, ``model``, ``firmware``, any other column is a
    label. Idempotent; bad rows are reported, good rows kept. This endpoint alone accepts bodies
    up to ``max_import_bytes`` (default 8 MiB).
    """
    return services().devices.import_csv(principal(), csv_lines(request.get_data()))
