"""Settings: built-in defaults <- TOML file ($CA_SERVICE_CONFIG) <- CA_SERVICE_* environment.

Every ``CA_SERVICE_<FIELD>`` may instead be given as ``CA_SERVICE_<FIELD>_FILE``, the path of a
file that holds the value (systemd credentials, container secrets): a secret need not sit in the
environment, the unit file or the state volume.

Settings are frozen and validated when loaded (:func:`load_settings`): every setting has its
range or its choices, security floors cannot be lowered (RSA >= 2048 bits, curves from
:data:`CURVE_LABELS`), URLs need their scheme. A refusal names the variable or TOML key the value
came from and what is allowed. Secrets (the key passphrase) are held in fields excluded from
``repr`` and from :meth:`Settings.public_dump`, so a config dump never shows them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ca_service.domain import Profile
from ca_service.errors import CAError, Kind

ENV_PREFIX = "CA_SERVICE_"

# Work factors of the KDFs that seal keys with the key store passphrase (today the scrypt of the
# file wrapping key). "standard" is what a deployment uses; "minimal" makes sealing nearly free for
# the test suite and is refused unless ``test_only_settings`` is true.
KDF_COSTS = ("standard", "minimal")
# the curves a CSR's key may be on (``allowed_curves`` chooses among them), with their labels
CURVE_LABELS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# how OCSP responses name their signer (RFC 6960 4.2.2.3): by the hash of its key, or by its name
OCSP_RESPONDER_IDS = ("hash", "name")
# CA_SERVICE_* variables read by something other than Settings
OTHER_VARIABLES = {
    ENV_PREFIX + "CONFIG": "the TOML settings file",
    ENV_PREFIX + "ACCESS_LOG": "gunicorn's access log on stderr (gunicorn_conf.py)",
    ENV_PREFIX + "TEST_PG": "the PostgreSQL server of the test suite (tests/conftest.py)",
}

DEFAULT_PROFILES: tuple[Profile, ...] = (
    Profile(
        name="device",
        description="Gigaset base station client (and SIP-TLS server) certificate, CN=<MAC>",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Every field can be set as ``CA_SERVICE_<FIELD>`` or in the TOML file."""

    home: Path = Path("var")
    database_url: str = ""  # empty: sqlite under home
    public_url: str = "http://127.0.0.1:8000"
    bind: str = "127.0.0.1:8000"
    workers: int = 0  # 0: derived from the CPU count
    key_passphrase: str = field(default="", repr=False)  # empty: <home>/keys/passphrase
    # the file key_passphrase was read from (CA_SERVICE_KEY_PASSPHRASE_FILE, the systemd
    # credential, the TOML file); set by load_settings only, so the key store can tell a
    # passphrase lying in the home
    key_passphrase_origin: str = ""
    wrapping_key_uri: str = ""  # pkcs11: URI of an AES key in a token; empty: the file wrapping key
    kdf_cost: str = "standard"  # work factor of passphrase KDFs that seal keys (KDF_COSTS)
    test_only_settings: bool = False  # true only in the test suite: permits kdf_cost = "minimal"
    # CSR policy (design decision 3)
    allowed_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    min_rsa_bits: int = 2048
    max_rsa_bits: int = 8192
    rsa_public_exponent: int = 65537  # the only RSA exponent accepted in CSRs (small ones are unsafe)
    oui_allowlist: tuple[str, ...] = ()  # empty: any OUI; else prefixes of canonical MACs
    # Issuance
    default_profile: str = "device"
    subject_organization: str = ""
    subject_organizational_unit: str = ""
    subject_country: str = ""
    validity_days: int = 365
    san_permanent_identifier: bool = True
    san_dns_name: bool = True
    profiles: tuple[Profile, ...] = DEFAULT_PROFILES
    # Provisioning: keys made for devices and their one-time download URLs
    download_ttl_seconds: int = 24 * 3600
    download_bind_user_agent: bool = False  # the device's User-Agent must name its MAC
    issuer_refresh_seconds: int = 2  # how often workers look for an issuer rotation
    # ACME (RFC 8555) and renewal information (RFC 9773)
    acme_nonce_seconds: int = 3600
    acme_order_days: int = 7
    acme_website: str = ""
    acme_terms_url: str = ""
    renewal_window_start: float = 0.667  # share of the lifetime where the earliest window opens
    renewal_window_spread: float = 0.1  # share of the lifetime over which windows are spread
    renewal_window_length: float = 0.05  # share of the lifetime a window stays open
    renewal_retry_after_seconds: int = 21600
    revoke_superseded_after_hours: int = 0  # 0: never revoke a replaced certificate automatically
    # Revocation (CRLs and OCSP)
    crl_lifetime_seconds: int = 86400  # nextUpdate = thisUpdate + this
    crl_refresh_seconds: int = 43200  # the schedule regenerates a CRL once it is this old
    crl_drop_expired: bool = True  # entries of expired certificates leave the CRL
    crl_cache_seconds: int = 300  # Cache-Control max-age of a served CRL (never past nextUpdate)
    crl_coalesce_ms: int = 500  # revocations arriving within this window share one regeneration
    crl_check_seconds: int = 30  # how often each worker's publisher looks for due work
    crl_lease_seconds: int = (
        10  # a publishing worker's lease, renewed while it builds; a dead holder's runs out
    )
    keystore_check_seconds: int = 30  # each worker signs a test message this often (health)
    crl_stale_after_seconds: int = 60  # /healthz says stale when a revocation waits longer for its CRL
    ocsp_lifetime_seconds: int = 14400  # nextUpdate of OCSP responses
    ocsp_cache_seconds: int = 300  # Cache-Control max-age of OCSP GET answers (never past nextUpdate)
    ocsp_responder_id: str = "hash"  # RFC 6960 4.2.2.3 ResponderID: "hash" (byKey) or "name" (byName)
    ocsp_include_certificate: bool = False  # put the signing CA certificate into responses (certs)
    root_crl_warn_days: int = 7  # /healthz warns when an imported root CRL is this near its nextUpdate
    # Web
    max_body_bytes: int = 64 * 1024
    # empty: /docs serves Swagger UI from the pinned package; else the URL of a swagger-ui-dist
    # folder (a CDN, a mirror) that the page loads it from
    swagger_ui_url: str = ""
    max_import_bytes: int = 8 * 1024 * 1024  # POST /api/v1/device-imports only
    log_level: str = "INFO"
    idempotency_key_hours: int = 24  # how long a client's Idempotency-Key answers its retries
    # Bounds of every database call, seconds (design decision 10): a breach answers 503
    db_connect_timeout: float = 2.0
    db_statement_timeout: float = 5.0
    db_lock_timeout: float = 2.0
    db_pool_timeout: float = 2.0
    db_transaction_timeout: float = 4.0  # wall clock of a request's transaction (a silent peer)
    db_pause_seconds: float = 2.0  # after a database failure, fail fast this long before probing
    # Issuance rate limits, counted in the database (every worker and host shares them); 0: none
    rate_limit_token: int = 0  # certificates one API token may have issued per window
    rate_limit_token_window_seconds: int = 3600
    rate_limit_acme_account: int = 0  # certificates one ACME account may have issued per window
    rate_limit_acme_account_window_seconds: int = 3600
    rate_limit_mac: int = 0  # certificates one device MAC may get per window, on every path
    rate_limit_mac_window_seconds: int = 86400
    # where each setting came from ("CA_SERVICE_X", "CA_SERVICE_X_FILE", the TOML file, "override");
    # a setting at its default is absent. Set by load_settings; not a setting itself.
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Site-wide subject and validity settings fill what a profile leaves unset; a lowered
        KDF cost is refused outside the test suite."""
        if self.kdf_cost not in KDF_COSTS:
            raise CAError(Kind.MALFORMED, f"kdf_cost must be one of {', '.join(KDF_COSTS)}.")
        if self.kdf_cost != "standard" and not self.test_only_settings:
            raise CAError(
                Kind.MALFORMED,
                f"kdf_cost = '{self.kdf_cost}' makes sealed keys cheap to attack and is for the test "
                "suite only (with test_only_settings = true); a deployment uses 'standard'.",
            )
        profiles = tuple(
            dataclasses.replace(
                p,
                organization=p.organization or self.subject_organization or None,
                organizational_unit=p.organizational_unit or self.subject_organizational_unit or None,
                country=p.country or self.subject_country or None,
                validity_days=self.validity_days if p.validity_days is None else p.validity_days,
                san_permanent_identifier=p.san_permanent_identifier and self.san_permanent_identifier,
                san_dns_name=p.san_dns_name and self.san_dns_name,
            )
            for p in self.profiles
        )
        object.__setattr__(self, "profiles", profiles)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.home / 'ca.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def profile(self, name: str | None) -> Profile:
        """The named profile with the site-wide subject and validity settings applied."""
        wanted = name or self.default_profile
        for p in self.profiles:
            if p.name == wanted:
                return p
        names = ", ".join(p.name for p in self.profiles)
        raise CAError(Kind.INVALID_PROFILE, f"Unknown profile '{wanted[:40]}'; known profiles: {names}.")

    def public_dump(self) -> dict[str, object]:
        """Settings fit to print: secrets replaced by a marker, the database password masked."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if not f.repr:
                value = "(set)" if value else "(unset)"
            elif f.name == "database_url":
                value = masked_url(value)
            elif isinstance(value, Path):
                value = str(value)
            elif f.name == "profiles":
                value = [dataclasses.asdict(p) for p in value]
            out[f.name] = value
        return out


def masked_url(url: str) -> str:
    """``url`` fit to show: a password, in ``scheme://user:password@host/...`` or as a
    ``password=`` query parameter (libpq), replaced by ``***`` as SQLAlchemy's
    ``render_as_string(hide_password=True)`` does (config imports no SQLAlchemy)."""
    parts = original = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() == "password" for k, _ in query):
        hidden = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return url if parts == original else urlunsplit(parts)


def _coerce(label: str, hint: Any, raw: Any) -> Any:
    """``raw`` (an environment string or a TOML value) as the type of the setting; ``label``
    names where it came from in the refusal."""
    origin = getattr(hint, "__origin__", None)
    wanted = {bool: "true or false", int: "a whole number", float: "a number"}.get(hint, "")
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(str(raw))
        if hint is str:
            return str(raw)
        if origin is tuple:
            items = raw if isinstance(raw, list | tuple) else [s for s in str(raw).split(",")]
            return tuple(str(i).strip() for i in items if str(i).strip())
    except ValueError as exc:
        shown = str(raw)[:40]
        raise CAError(Kind.MALFORMED, f"{label} = {shown!r} is refused: it must be {wanted}.") from exc
    return raw


def _profiles(table: Mapping[str, Any]) -> tuple[Profile, ...]:
    """The built-in profiles changed or extended by the TOML ``[profiles.NAME]`` tables."""
    known = {p.name: p for p in DEFAULT_PROFILES}
    allowed = {f.name for f in fields(Profile)}
    for name, values in table.items():
        if not isinstance(values, Mapping) or set(values) - allowed:
            raise CAError(Kind.MALFORMED, f"Profile '{name}' has unknown keys; allowed: {sorted(allowed)}.")
        start = known.get(name, Profile(name=name))
        known[name] = dataclasses.replace(start, **dict(values))
    return tuple(known.values())


def _read_value_file(variable: str, path: str) -> str:
    """The value of a setting read from the file that ``variable`` names, without surrounding
    whitespace (a trailing newline). Errors name the file, never its content."""
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CAError(Kind.MALFORMED, f"Cannot read the file {path} named by {variable}.") from exc


SYSTEMD_CREDENTIAL = "key-passphrase"  # $CREDENTIALS_DIRECTORY/key-passphrase (LoadCredential=)
# fields that are not read as CA_SERVICE_<FIELD> (profiles come from TOML tables only)
NOT_FROM_ENVIRONMENT = ("profiles", "sources", "key_passphrase_origin")


def setting_names() -> list[str]:
    """The names of every setting (TOML keys; upper-cased with the prefix, the variables)."""
    return [f.name for f in fields(Settings) if f.name not in ("sources", "key_passphrase_origin")]


def _closest(name: str, known: list[str]) -> str:
    """', did you mean X?' for the known name closest to ``name``, or nothing."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for every ``CA_SERVICE_*`` variable that is neither a setting (nor its
    ``_FILE`` form) nor one of :data:`OTHER_VARIABLES`, naming the closest known one: a
    misspelled variable is otherwise silently ignored."""
    env = os.environ if environ is None else environ
    settings = [ENV_PREFIX + n.upper() for n in setting_names() if n not in NOT_FROM_ENVIRONMENT]
    known = [*settings, *(n + "_FILE" for n in settings), *OTHER_VARIABLES]
    return [
        f"{name} is not a setting and is ignored{_closest(name, known)}"
        for name in sorted(env)
        if name.startswith(ENV_PREFIX) and name not in known
    ]


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, the TOML file named by $CA_SERVICE_CONFIG, the environment
    and finally ``overrides`` (used by tests and the CLI), then validate them (:func:`validate`).
    Without a key passphrase from any of those, a systemd credential ``key-passphrase``
    ($CREDENTIALS_DIRECTORY, systemd.exec(5)) is read. ``Settings.sources`` records where each
    setting that is not at its default came from; ``key_passphrase_origin`` the file the
    passphrase came from ("" when it came from no file)."""
    env = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config_file = env.get(ENV_PREFIX + "CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CAError(Kind.MALFORMED, f"Cannot read config file {config_file}: {exc}") from exc
        for key, raw in data.items():
            if key == "profiles":
                values["profiles"] = _profiles(raw)
            elif key in hints and key not in NOT_FROM_ENVIRONMENT:
                values[key] = _coerce(f"'{key}' in {config_file}", hints[key], raw)
            else:
                raise CAError(
                    Kind.MALFORMED,
                    f"Unknown setting '{key}' in {config_file}{_closest(key, setting_names())}",
                )
            sources[key] = config_file
        if "key_passphrase" in values:
            values["key_passphrase_origin"] = config_file
    for f in fields(Settings):
        if f.name in NOT_FROM_ENVIRONMENT:
            continue
        name = ENV_PREFIX + f.name.upper()
        raw = env.get(name)
        if name + "_FILE" in env:  # the value in a file: secrets from systemd credentials, container secrets
            if raw is not None:
                raise CAError(Kind.MALFORMED, f"Set {name} or {name}_FILE, not both.")
            raw = _read_value_file(name + "_FILE", env[name + "_FILE"])
            if f.name == "key_passphrase":
                values["key_passphrase_origin"] = env[name + "_FILE"]
            name += "_FILE"
        elif raw is not None and f.name == "key_passphrase":
            values["key_passphrase_origin"] = ""  # the environment: in no file
        if raw is not None:
            values[f.name] = _coerce(name, hints[f.name], raw)
            sources[f.name] = name
    credentials = env.get("CREDENTIALS_DIRECTORY")
    credential = Path(credentials) / SYSTEMD_CREDENTIAL if credentials else None
    if not values.get("key_passphrase") and credential is not None and credential.is_file():
        values["key_passphrase"] = _read_value_file("CREDENTIALS_DIRECTORY", str(credential))
        values["key_passphrase_origin"] = sources["key_passphrase"] = str(credential)
    values.update(overrides)
    sources.update(dict.fromkeys(overrides, "override"))
    if "key_passphrase" in overrides and "key_passphrase_origin" not in overrides:
        values["key_passphrase_origin"] = ""
    settings = Settings(**values, sources=sources)
    validate(settings)
    return settings


# -- validation --------------------------------------------------------------------------------
# (smallest, largest, what the number is): every numeric setting has its range
RANGES: dict[str, tuple[float, float, str]] = {
    "workers": (0, 256, "the number of gunicorn workers (0: two per CPU)"),
    "min_rsa_bits": (2048, 16384, "the smallest RSA key accepted in CSRs (bits; below 2048 is unsafe)"),
    "max_rsa_bits": (2048, 16384, "the largest RSA key accepted in CSRs (bits)"),
    "rsa_public_exponent": (65537, 2**31 - 1, "the RSA public exponent required in CSRs (65537 or larger)"),
    "validity_days": (1, 3650, "the validity of device certificates (days)"),
    "download_ttl_seconds": (60, 30 * 86400, "the lifetime of download URLs (seconds)"),
    "issuer_refresh_seconds": (0, 3600, "how often workers look for an issuer rotation (seconds)"),
    "acme_nonce_seconds": (60, 86400, "the lifetime of ACME nonces (seconds)"),
    "acme_order_days": (1, 30, "the lifetime of ACME orders (days)"),
    "renewal_window_start": (0, 0.99, "the share of the lifetime where renewal windows open"),
    "renewal_window_spread": (0, 0.5, "the share of the lifetime over which windows are spread"),
    "renewal_window_length": (0, 0.5, "the share of the lifetime a window stays open (1 minute at least)"),
    "renewal_retry_after_seconds": (60, 7 * 86400, "the Retry-After of renewal information (seconds)"),
    "revoke_superseded_after_hours": (0, 8760, "the grace before a replaced certificate is revoked (hours)"),
    "crl_lifetime_seconds": (300, 366 * 86400, "the lifetime of a CRL, nextUpdate - thisUpdate (seconds)"),
    "crl_refresh_seconds": (60, 366 * 86400, "the age at which a CRL is regenerated (seconds)"),
    "crl_cache_seconds": (0, 86400, "the Cache-Control max-age of served CRLs (seconds)"),
    "crl_coalesce_ms": (0, 60000, "the window in which revocations share a CRL (milliseconds)"),
    "crl_check_seconds": (1, 3600, "how often each worker looks for due CRL work (seconds)"),
    "crl_lease_seconds": (2, 3600, "the CRL publication lease (seconds)"),
    "keystore_check_seconds": (1, 3600, "how often each worker tests its key store (seconds)"),
    "crl_stale_after_seconds": (1, 86400, "how long a revocation may wait for its CRL (seconds)"),
    "ocsp_lifetime_seconds": (60, 7 * 86400, "the lifetime of OCSP responses (seconds)"),
    "ocsp_cache_seconds": (0, 7 * 86400, "the Cache-Control max-age of OCSP GET answers (seconds)"),
    "root_crl_warn_days": (1, 365, "how long before an imported root CRL's nextUpdate to warn (days)"),
    "max_body_bytes": (1024, 16 * 1024 * 1024, "the request body limit (bytes)"),
    "max_import_bytes": (1024, 1024 * 1024 * 1024, "the device import body limit (bytes)"),
    "idempotency_key_hours": (1, 720, "how long an Idempotency-Key answers retries (hours)"),
    "db_connect_timeout": (0.1, 300, "the database connect timeout (seconds)"),
    "db_statement_timeout": (0.1, 3600, "the database statement timeout (seconds)"),
    "db_lock_timeout": (0.1, 300, "the database lock timeout (seconds)"),
    "db_pool_timeout": (0.1, 300, "the wait for a pooled database connection (seconds)"),
    "db_transaction_timeout": (0.1, 300, "the wall clock of a request's transaction (seconds)"),
    "db_pause_seconds": (0, 300, "how long a worker fails fast after a database failure (seconds)"),
    "rate_limit_token": (0, 10**9, "certificates per API token and window (0: no limit)"),
    "rate_limit_acme_account": (0, 10**9, "certificates per ACME account and window (0: no limit)"),
    "rate_limit_mac": (0, 10**9, "certificates per device MAC and window (0: no limit)"),
    "rate_limit_token_window_seconds": (1, 366 * 86400, "the window of rate_limit_token (seconds)"),
    "rate_limit_acme_account_window_seconds": (
        1, 366 * 86400, "the window of rate_limit_acme_account (seconds)",
    ),
    "rate_limit_mac_window_seconds": (1, 366 * 86400, "the window of rate_limit_mac (seconds)"),
}  # fmt: skip
# http(s) URLs; only public_url is required
URL_SETTINGS = ("public_url", "acme_website", "acme_terms_url", "swagger_ui_url")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_BIND = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*):(\d{1,5})$")
_HEX = re.compile(r"^[0-9A-F]{1,12}$")


def label(settings: Settings, name: str) -> str:
    """How the operator wrote setting ``name``: its variable, its key in the TOML file, or its
    name when it is at its default."""
    source = settings.sources.get(name, "")
    if source.startswith(ENV_PREFIX):
        return source
    if source and source != "override":
        return f"'{name}' in {source}"
    return f"'{name}'"


def _refuse(settings: Settings, name: str, why: str) -> CAError:
    """The refusal of setting ``name``, with its value unless it may hold a password."""
    value = getattr(settings, name)
    shown = ",".join(value) if isinstance(value, tuple) else value
    text = f"{_number(shown)}" if isinstance(shown, int | float) else repr(str(shown)[:80])
    said = "" if name == "database_url" else f" = {text}"
    return CAError(Kind.MALFORMED, f"{label(settings, name)}{said} is refused: {why}.")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_bind(text: str) -> str | None:
    """Why ``text`` is not a gunicorn bind address (HOST:PORT with a port 1-65535, [IPv6]:PORT
    or unix:PATH), or None when it is one."""
    if text.startswith("unix:") and len(text) > 5:
        return None
    match = _BIND.match(text)
    if match is None:
        return "give HOST:PORT (e.g. 127.0.0.1:8000), [IPv6]:PORT or unix:/path/to/socket"
    if not 1 <= int(match.group(1)) <= 65535:
        return f"the port {int(match.group(1))} is not within 1 to 65535"
    return None


def _url_problem(url: str, *, required: bool) -> str | None:
    if not url:
        return "an http:// or https:// URL is needed" if required else None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http:// or https:// URL with a host, e.g. https://ca.example.net"
    if parts.query or parts.fragment:
        return "it must not have a query or a fragment (paths are appended to it)"
    return None


def _database_problem(url: str) -> str | None:
    if not url:
        return None
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        named = f"'{scheme}' databases are not supported; " if scheme else ""
        return (
            f"{named}give a postgresql://USER@HOST/DATABASE URL (PostgreSQL, psycopg 3), a "
            "sqlite:////absolute/path.db URL, or leave it empty for SQLite under the home"
        )
    return None


def validate(settings: Settings) -> None:
    """Refuse settings outside their range or choices (:data:`RANGES`), security floors below
    their safe value, URLs without an http(s) scheme, a bind address without a usable port, an
    unknown default profile, curve or log level. The CAError names the variable or TOML key and
    what is allowed."""
    for name, (low, high, what) in RANGES.items():
        if not low <= getattr(settings, name) <= high:
            raise _refuse(settings, name, f"{what} must be from {_number(low)} to {_number(high)}")
    pairs = (
        ("max_rsa_bits", settings.max_rsa_bits >= settings.min_rsa_bits, "it is below min_rsa_bits"),
        (
            "crl_refresh_seconds",
            settings.crl_refresh_seconds < settings.crl_lifetime_seconds,
            "a CRL must be regenerated before it expires: keep it below crl_lifetime_seconds",
        ),
        (
            "renewal_window_spread",
            settings.renewal_window_start + settings.renewal_window_spread < 1,
            "renewal_window_start + renewal_window_spread must stay below 1 (windows before expiry)",
        ),
    )
    for name, ok, why in pairs:
        if not ok:
            raise _refuse(settings, name, why)
    unknown_curves = set(settings.allowed_curves) - set(CURVE_LABELS)
    if unknown_curves:
        raise _refuse(settings, "allowed_curves", f"the supported curves are {', '.join(CURVE_LABELS)}")
    if settings.ocsp_responder_id not in OCSP_RESPONDER_IDS:
        raise _refuse(settings, "ocsp_responder_id", f"it must be one of {', '.join(OCSP_RESPONDER_IDS)}")
    if settings.log_level.upper() not in LOG_LEVELS:
        raise _refuse(settings, "log_level", f"it must be one of {', '.join(LOG_LEVELS)}")
    for name in URL_SETTINGS:
        if problem := _url_problem(getattr(settings, name), required=name == "public_url"):
            raise _refuse(settings, name, problem)
    if problem := _database_problem(settings.database_url):
        raise _refuse(settings, "database_url", problem)
    if problem := check_bind(settings.bind):
        raise _refuse(settings, "bind", problem)
    if settings.wrapping_key_uri and not settings.wrapping_key_uri.startswith("pkcs11:"):
        raise _refuse(settings, "wrapping_key_uri", "it must be a pkcs11: URI, or empty for the file key")
    for prefix in settings.oui_allowlist:
        if not _HEX.match(prefix):
            raise _refuse(settings, "oui_allowlist", "each entry is 1-12 uppercase hex digits, e.g. 7C2F80")
    if settings.subject_country and not re.fullmatch(r"[A-Z]{2}", settings.subject_country):
        raise _refuse(settings, "subject_country", "it must be a two-letter ISO 3166 code such as DE")
    names = [p.name for p in settings.profiles]
    if settings.default_profile not in names:
        raise _refuse(settings, "default_profile", f"the profiles are {', '.join(names)}")
    shortest = 0 if settings.test_only_settings else 1  # the test suite's certificates that end at once
    for profile in settings.profiles:
        if not shortest <= (profile.validity_days or 0) <= RANGES["validity_days"][1]:
            raise CAError(
                Kind.MALFORMED,
                f"Profile '{profile.name}' has validity_days = {profile.validity_days}; "
                "it must be from 1 to 3650.",
            )
