"""Settings: built-in defaults <- TOML file ($CA_SERVICE_CONFIG) <- CA_SERVICE_* environment.

Every ``CA_SERVICE_<FIELD>`` may instead be given as ``CA_SERVICE_<FIELD>_FILE``, the path of a
file that holds the value (systemd credentials, container secrets): a secret need not sit in the
environment, the unit file or the state volume.

Settings are frozen. Secrets (the key passphrase) are held in fields excluded from ``repr`` and
from :meth:`Settings.public_dump`, so a config dump never shows them.
"""

from __future__ import annotations

import dataclasses
import os
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


def _coerce(name: str, hint: Any, raw: Any) -> Any:
    origin = getattr(hint, "__origin__", None)
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
        raise CAError(Kind.MALFORMED, f"Setting '{name}' has an invalid value.") from exc
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
DERIVED = ("profiles", "key_passphrase_origin")  # never read as CA_SERVICE_<FIELD>


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, the TOML file named by $CA_SERVICE_CONFIG, the environment
    and finally ``overrides`` (used by tests and the CLI). Without a key passphrase from any of
    those, a systemd credential ``key-passphrase`` ($CREDENTIALS_DIRECTORY, systemd.exec(5))
    is read. ``key_passphrase_origin`` records the file the passphrase came from."""
    env = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
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
            elif key in hints and key not in DERIVED:
                values[key] = _coerce(key, hints[key], raw)
            else:
                raise CAError(Kind.MALFORMED, f"Unknown setting '{key}' in {config_file}.")
        if "key_passphrase" in values:
            values["key_passphrase_origin"] = config_file
    for f in fields(Settings):
        name = ENV_PREFIX + f.name.upper()
        raw = env.get(name)
        if name + "_FILE" in env:  # the value in a file: secrets from systemd credentials, container secrets
            if raw is not None:
                raise CAError(Kind.MALFORMED, f"Set {name} or {name}_FILE, not both.")
            raw = _read_value_file(name + "_FILE", env[name + "_FILE"])
            if f.name == "key_passphrase":
                values["key_passphrase_origin"] = env[name + "_FILE"]
        elif raw is not None and f.name == "key_passphrase":
            values["key_passphrase_origin"] = ""  # the environment: in no file
        if raw is not None and f.name not in DERIVED:
            values[f.name] = _coerce(f.name, hints[f.name], raw)
    credentials = env.get("CREDENTIALS_DIRECTORY")
    credential = Path(credentials) / SYSTEMD_CREDENTIAL if credentials else None
    if not values.get("key_passphrase") and credential is not None and credential.is_file():
        values["key_passphrase"] = _read_value_file("CREDENTIALS_DIRECTORY", str(credential))
        values["key_passphrase_origin"] = str(credential)
    values.update(overrides)
    if "key_passphrase" in overrides and "key_passphrase_origin" not in overrides:
        values["key_passphrase_origin"] = ""
    return Settings(**values)
