"""ACME resources (RFC 8555 section 7) as a plain Flask blueprint under /acme/.

Every URL is built from ``CA_SERVICE_PUBLIC_URL``, never from the request's Host header (a
forged Host changes nothing). Every POST is a JWS whose ``url`` must equal the public URL of the
resource it was sent to, and whose nonce is redeemed once on any worker or host; each response
carries a fresh ``Replay-Nonce`` and ``Link: <directory>;rel="index"``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import josepy as jose
from flask import Blueprint, Response, current_app, g, request

from ca_service.acme import jws
from ca_service.acme.problems import from_caerror, log
from ca_service.domain import parse_serial
from ca_service.enrollment.acme import (
    DEACTIVATED,
    Account,
    AcmeAuthority,
    Order,
    Redemption,
    check_contact,
)
from ca_service.errors import CAError, Kind

bp = Blueprint("acme", __name__, url_prefix="/acme")

JOSE_JSON = "application/jose+json"
CHALLENGE_TYPE = "external-account-01"  # see challenge_body
PEM_CHAIN = "application/pem-certificate-chain"


def authority() -> AcmeAuthority:
    return current_app.extensions["ca_service"].acme  # type: ignore[no-any-return]


def base() -> str:
    return str(current_app.extensions["ca_service"].settings.public_url).rstrip("/") + "/acme"


def this_url() -> str:
    """The public URL of the resource this request was sent to (what its JWS ``url`` names)."""
    return base() + request.path.removeprefix("/acme")


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def reply(body: object, status: int = 200, location: str | None = None, **headers: str) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if location:
        response.headers["Location"] = location
    response.headers.update(headers)
    return response


def finish(response: Response) -> Response:
    """Headers of every answer under /acme/, errors included (the app calls this after each
    ACME request, also when routing failed before the blueprint was reached): the directory
    link, no caching, and a fresh ``Replay-Nonce`` on POSTs, new-nonce and every error
    (RFC 8555 sections 6.5 and 7.2)."""
    redemption: Redemption | None = g.get("acme_redemption")
    if redemption is not None and not redemption.redeemed and response.status_code >= 400:
        replayed = _spend(redemption)
        if replayed is not None:  # found out only now: badNonce after all
            response = from_caerror(replayed)
    response.headers.add("Link", f'<{base()}/directory>;rel="index"')
    response.headers["Cache-Control"] = "no-store"
    if request.method == "POST" or request.endpoint == "acme.new_nonce" or response.status_code >= 400:
        nonce = g.get("acme_nonce")
        if nonce is None:
            try:
                nonce = authority().new_nonce()
            except CAError:
                return response
        response.headers["Replay-Nonce"] = nonce
    return response


def _spend(redemption: Redemption) -> CAError | None:
    """A verified request refused before its own transaction still uses up its nonce (section
    6.5: a nonce is accepted once), in a transaction of its own. The badNonce error when the
    nonce had been used before: the request was a replay. A database failure here leaves the
    answer as it was."""
    try:
        authority().redeem(redemption.nonce, None)
    except CAError as exc:
        if exc.kind is Kind.BAD_NONCE:
            return exc
        log.warning("nonce of a refused request not recorded", extra={"account": redemption.signer.id})
    return None


# -- request authentication (section 6.2-6.5) -------------------------------------------------
def _account_id(kid: str) -> int:
    prefix = base() + "/acct/"
    tail = kid[len(prefix) :] if kid.startswith(prefix) else ""
    if not tail.isdigit() or len(tail) > 12:
        raise CAError(Kind.ACCOUNT_MISSING, "The 'kid' is not an account URL of this server.")
    return int(tail)


def signed_request(
    allow_jwk: bool = False, defer: bool = False
) -> tuple[jws.Signed, Account | None, jose.JWK]:
    """Parse and authenticate the JWS of this POST: (request, account or None, signing key).

    With ``allow_jwk`` (newAccount; revocation by certificate key) ``jwk`` may sign; all
    others with the ``kid`` of an existing, valid account. With ``defer`` the nonce is only
    checked here; ``g.acme_redemption`` redeems it in the view's own write transaction."""
    if request.mimetype != JOSE_JSON:
        raise CAError(Kind.MALFORMED, f"Send ACME requests as {JOSE_JSON}.")
    signed = jws.parse(request.get_data())
    jws.check_outer_header(signed)
    if signed.header["url"] != this_url():
        raise CAError(Kind.UNAUTHORIZED, "The JWS 'url' header is not the URL this request was sent to.")
    if "jwk" in signed.header and not allow_jwk:
        raise CAError(Kind.MALFORMED, "This request must be signed with the account's 'kid'.")
    if "kid" in signed.header and request.endpoint == "acme.new_account":
        raise CAError(Kind.MALFORMED, "newAccount requests are signed with 'jwk', not 'kid'.")
    account_id = _account_id(str(signed.header["kid"])) if "kid" in signed.header else None
    g.acme_account = account_id
    # The key comes from the worker's copy of the account (no read per request); when it does
    # not verify, or changed meanwhile (key rollover on another worker), read it again once.
    for fresh in (False, True):
        account = authority().signer(account_id, fresh=fresh) if account_id is not None else None
        if account_id is not None and account is None:
            raise CAError(Kind.ACCOUNT_MISSING, "There is no account with this key id.")
        key = jws.load_jwk(account.jwk if account else signed.header["jwk"])
        try:
            jws.verify(signed, key)  # before the nonce is redeemed: a forged request writes nothing
            break
        except CAError:
            if fresh or account is None:
                raise
    nonce = signed.header["nonce"]
    g.acme_nonce = authority().new_nonce()
    if defer and account is not None:  # checked now, redeemed in the view's own transaction
        authority().check_nonce(nonce)
        g.acme_redemption = Redemption(authority(), nonce, account)
    else:
        account = authority().redeem(nonce, account)
    if account is not None and account.status != "valid":
        raise CAError(Kind.UNAUTHORIZED, DEACTIVATED)
    return signed, account, key


def account_request(defer: bool = False) -> tuple[jws.Signed, Account]:
    """An authenticated request signed by an existing, valid account (``kid``); ``defer``: see
    :func:`signed_request`."""
    signed, account, _ = signed_request(defer=defer)
    if account is None:  # unreachable: signed_request demands 'kid' unless allow_jwk
        raise CAError(Kind.MALFORMED, "This request must be signed with the account's 'kid'.")
    return signed, account


def payload_object(signed: jws.Signed) -> dict[str, Any]:
    try:
        value = json.loads(signed.payload)
    except (ValueError, RecursionError) as exc:
        raise CAError(Kind.MALFORMED, "The JWS payload is not JSON.") from exc
    if not isinstance(value, dict):
        raise CAError(Kind.MALFORMED, "The JWS payload must be a JSON object.")
    return value


def post_as_get(signed: jws.Signed) -> None:
    if signed.payload != b"":
        raise CAError(Kind.MALFORMED, "This resource is fetched with POST-as-GET (an empty payload).")


# -- representations ---------------------------------------------------------------------------
def account_url(account: Account) -> str:
    return f"{base()}/acct/{account.id}"


def account_body(account: Account) -> dict[str, Any]:
    return {"status": account.status, "contact": account.contact, "orders": account_url(account) + "/orders"}


def order_url(order: Order) -> str:
    return f"{base()}/order/{order.token}"


def order_body(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": order.status,
        "expires": rfc3339(order.expires_at),
        "identifiers": order.identifiers,
        "authorizations": [f"{base()}/authz/{order.token}/{i}" for i in range(len(order.identifiers))],
        "finalize": order_url(order) + "/finalize",
        "profile": order.profile,
    }
    if order.replaces:
        body["replaces"] = order.replaces
    if order.serial:
        body["certificate"] = f"{base()}/cert/{order.serial}"
    return body


# -- directory and nonces (sections 7.1.1, 7.2) ---------------------------------------------------
@bp.get("/directory")
def directory() -> Response:
    settings = current_app.extensions["ca_service"].settings
    meta: dict[str, Any] = {
        "externalAccountRequired": True,
        "profiles": {p.name: p.description or p.name for p in settings.profiles},
    }
    if settings.acme_website:
        meta["website"] = settings.acme_website
    if settings.acme_terms_url:
        meta["termsOfService"] = settings.acme_terms_url
    return reply(
        {
            "newNonce": base() + "/new-nonce",
            "newAccount": base() + "/new-account",
            "newOrder": base() + "/new-order",
            "revokeCert": base() + "/revoke-cert",
            "keyChange": base() + "/key-change",
            "renewalInfo": base() + "/renewal-info",
            "meta": meta,
        }
    )


@bp.route("/new-nonce", methods=["HEAD", "GET"])
def new_nonce() -> Response:
    g.acme_nonce = authority().new_nonce()
    return Response(status=200 if request.method == "HEAD" else 204)


# -- accounts (section 7.3) ----------------------------------------------------------------------
@bp.post("/new-account")
def new_account() -> Response:
    signed, _, key = signed_request(allow_jwk=True)
    body = payload_object(signed)
    thumb = jws.thumbprint(key)
    existing = authority().account_by_thumbprint(thumb)
    if existing is not None:
        return reply(account_body(existing), 200, account_url(existing))
    if body.get("onlyReturnExisting"):
        raise CAError(Kind.ACCOUNT_MISSING, "No account exists with this key.")
    binding = body.get("externalAccountBinding")
    if binding is None:
        raise CAError(
            Kind.EXTERNAL_ACCOUNT_REQUIRED,
            "This server requires external account binding; create a key with 'ca-service eab create'.",
        )
    eab = jws.parse(binding)
    if "kid" not in eab.header or eab.header.get("url") != this_url() or "nonce" in eab.header:
        raise CAError(
            Kind.MALFORMED, "The external account binding needs 'kid' and this 'url', and no 'nonce'."
        )
    key_record = authority().eab_key(str(eab.header["kid"]))
    jws.verify_mac(eab, key_record.hmac_key)
    try:
        bound_key = jws.load_jwk(json.loads(eab.payload))
    except (ValueError, RecursionError) as exc:
        raise CAError(
            Kind.MALFORMED, "The external account binding payload must be the account JWK."
        ) from exc
    if bound_key != key:
        raise CAError(Kind.UNAUTHORIZED, "The external account binding is for another account key.")
    if key_record.bound:
        raise CAError(Kind.UNAUTHORIZED, "This external account binding key is already bound to an account.")
    contact = check_contact(body.get("contact") or [])
    account = authority().new_account(key.to_json(), thumb, key_record, contact)
    return reply(account_body(account), 201, account_url(account))


@bp.post("/acct/<int:account_id>")
def account(account_id: int) -> Response:
    signed, acct = account_request()
    if acct.id != account_id:
        raise CAError(Kind.UNAUTHORIZED, "Requests for an account must be signed by that account.")
    body = {} if signed.payload == b"" else payload_object(signed)
    contact = check_contact(body["contact"]) if body.get("contact") is not None else None
    status = body.get("status")
    if status not in (None, "deactivated"):
        raise CAError(Kind.MALFORMED, "An account may only be set to status 'deactivated'.")
    if contact is not None or status:
        acct = authority().update_account(acct, contact, status == "deactivated")
    return reply(account_body(acct), 200, account_url(acct))


@bp.post("/acct/<int:account_id>/orders")
def account_orders(account_id: int) -> Response:
    signed, acct = account_request()
    post_as_get(signed)
    if acct.id != account_id:
        raise CAError(Kind.UNAUTHORIZED, "Only the account itself may list its orders.")
    return reply({"orders": [f"{base()}/order/{t}" for t in authority().orders(acct)]})


@bp.post("/key-change")
def key_change() -> Response:
    """Section 7.3.5: the inner JWS, signed by the new key, names the account and its old key."""
    signed, acct = account_request()
    old_key = jws.load_jwk(acct.jwk)
    inner = jws.parse(payload_object(signed))
    if inner.alg not in jws.ALGORITHMS or "jwk" not in inner.header or "kid" in inner.header:
        raise CAError(Kind.MALFORMED, "The inner JWS is signed with the new key, given as 'jwk'.")
    if inner.header.get("url") != this_url() or "nonce" in inner.header:
        raise CAError(Kind.MALFORMED, "The inner JWS needs this 'url' and no 'nonce'.")
    new_key = jws.load_jwk(inner.header["jwk"])
    jws.verify(inner, new_key)
    body = payload_object(inner)
    if body.get("account") != account_url(acct):
        raise CAError(Kind.UNAUTHORIZED, "The inner payload's 'account' is not the signing account.")
    if jws.load_jwk(body.get("oldKey")) != old_key:
        raise CAError(Kind.UNAUTHORIZED, "'oldKey' is not the account's current key.")
    try:
        acct = authority().change_key(acct, new_key.to_json(), jws.thumbprint(new_key))
    except CAError as exc:
        if "account" not in exc.extra:
            raise
        other = exc.extra.pop("account")
        response = from_caerror(exc)
        response.headers["Location"] = f"{base()}/acct/{other}"  # section 7.3.5: the key's account
        return finish(response)
    return reply(account_body(acct), 200, account_url(acct))


# -- orders, authorizations, finalize, certificates (sections 7.4, 7.5) ------------------------
@bp.post("/new-order")
def new_order() -> Response:
    signed, acct = account_request(defer=True)
    body = payload_object(signed)
    order = authority().new_order(
        acct, body.get("identifiers"), body.get("profile"), body.get("replaces"), g.acme_redemption
    )
    return reply(order_body(order), 201, order_url(order))


@bp.post("/order/<token>")
def order(token: str) -> Response:
    signed, acct = account_request(defer=True)
    post_as_get(signed)
    found = authority().order(acct, token, g.acme_redemption)
    return reply(order_body(found), 200, order_url(found))


@bp.post("/authz/<token>/<int:index>")
def authorization(token: str, index: int) -> Response:
    """The order's identifiers are authorized by the account's EAB scope: already valid."""
    signed, acct = account_request(defer=True)
    post_as_get(signed)
    found = authority().order(acct, token, g.acme_redemption)
    if index >= len(found.identifiers):
        raise CAError(Kind.NOT_FOUND, "No such authorization.")
    return reply(
        {
            "identifier": found.identifiers[index],
            "status": "valid",
            "expires": rfc3339(found.expires_at),
            "challenges": [challenge_body(found, index)],
        }
    )


@bp.post("/chall/<token>/<int:index>")
def challenge(token: str, index: int) -> Response:
    """The validated challenge of a pre-authorized identifier: fetched (POST-as-GET) or
    answered (``{}``) alike, it is already valid."""
    signed, acct = account_request(defer=True)
    if signed.payload not in (b"", b"{}"):
        payload_object(signed)
    found = authority().order(acct, token, g.acme_redemption)
    if index >= len(found.identifiers):
        raise CAError(Kind.NOT_FOUND, "No such challenge.")
    return reply(challenge_body(found, index), 200, Link=f'<{base()}/authz/{token}/{index}>;rel="up"')


def challenge_body(order: Order, index: int) -> dict[str, Any]:
    """RFC 8555 section 7.1.4: a valid authorization lists the challenge that was validated.
    Ours are validated by the account's external account binding, whose MAC scope covers the
    identifier (the device was registered with the CA out of band); the type says so, and
    clients skip valid authorizations without looking at it."""
    return {
        "type": CHALLENGE_TYPE,
        "url": f"{base()}/chall/{order.token}/{index}",
        "status": "valid",
        "validated": rfc3339(order.created_at),
    }


@bp.post("/order/<token>/finalize")
def finalize(token: str) -> Response:
    signed, acct = account_request(defer=True)
    body = payload_object(signed)
    try:
        csr = jose.b64.b64decode(body["csr"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CAError(Kind.BAD_CSR, "'csr' is the base64url DER of a PKCS#10 request.") from exc
    done = authority().finalize(acct, token, csr, g.acme_redemption)
    return reply(order_body(done), 200, order_url(done))


@bp.post("/cert/<serial>")
def certificate(serial: str) -> Response:
    signed, acct = account_request(defer=True)
    post_as_get(signed)
    cert = authority().certificate(acct, parse_serial(serial), g.acme_redemption)
    return Response(cert.certificate_pem + cert.chain_pem, mimetype=PEM_CHAIN)


@bp.post("/revoke-cert")
def revoke_cert() -> Response:
    """Section 7.6: signed by an account (``kid``) or by the certificate's key (``jwk``)."""
    signed, acct, key = signed_request(allow_jwk=True)
    body = payload_object(signed)
    try:
        der = jose.b64.b64decode(body["certificate"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CAError(Kind.MALFORMED, "'certificate' is the base64url DER of the certificate.") from exc
    reason = body.get("reason", 0)
    if not isinstance(reason, int) or isinstance(reason, bool):
        raise CAError(Kind.BAD_REVOCATION_REASON, "'reason' is an RFC 5280 reason code.")
    revocation = current_app.extensions["ca_service"].revocation
    if acct is not None:
        revocation.revoke_presented(der, reason, principal=acct.principal)
    else:
        revocation.revoke_presented(der, reason, signer_key=jws.raw_key(key))
    return Response(status=200)


# -- renewal information (RFC 9773 section 4) -------------------------------------------------
@bp.get("/renewal-info/<cert_id>")
def renewal_info(cert_id: str) -> Response:
    info = current_app.extensions["ca_service"].renewals.for_cert_id(cert_id)
    body = {"suggestedWindow": {"start": rfc3339(info.window.start), "end": rfc3339(info.window.end)}}
    return reply(body, 200, **{"Retry-After": str(info.retry_after)})
