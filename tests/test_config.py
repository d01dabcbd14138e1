"""Settings: defaults <- TOML <- environment; profiles take the site defaults they leave unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca_service.config import load_settings, unknown_variables
from ca_service.errors import CAError


def test_profile_validity_follows_the_site_unless_the_profile_sets_it(tmp_path: Path) -> None:
    """[profiles.X] validity_days wins, even when it equals the built-in 365; otherwise the site's."""
    config = tmp_path / "ca.toml"
    config.write_text(
        "validity_days = 730\n"
        "[profiles.device]\norganization = 'Example'\n"
        "[profiles.short]\nvalidity_days = 365\n"
    )
    settings = load_settings(environ={"CA_SERVICE_CONFIG": str(config)})
    assert settings.profile("device").validity_days == 730
    assert settings.profile("device").organization == "Example"
    assert settings.profile("short").validity_days == 365


def test_a_setting_can_come_from_a_file(tmp_path: Path) -> None:
    """CA_SERVICE_<FIELD>_FILE names a file holding the value (a systemd credential, a container
    secret); its trailing newline is not part of the value, and the secret stays masked."""
    secret = tmp_path / "key-passphrase"
    secret.write_text("correct horse battery staple\n")
    workers = tmp_path / "workers"
    workers.write_text("3")
    settings = load_settings(
        environ={"CA_SERVICE_KEY_PASSPHRASE_FILE": str(secret), "CA_SERVICE_WORKERS_FILE": str(workers)}
    )
    assert settings.key_passphrase == "correct horse battery staple"
    assert settings.workers == 3
    assert settings.public_dump()["key_passphrase"] == "(set)"


def test_a_setting_file_is_refused_when_unreadable_or_doubled(tmp_path: Path) -> None:
    """A missing file and a value given both ways are refused with sentences that name the
    variable, never a value."""
    missing = tmp_path / "nothing-here"
    with pytest.raises(CAError) as unreadable:
        load_settings(environ={"CA_SERVICE_KEY_PASSPHRASE_FILE": str(missing)})
    variable = "CA_SERVICE_KEY_PASSPHRASE_FILE"
    assert unreadable.value.detail == f"Cannot read the file {missing} named by {variable}."
    secret = tmp_path / "key-passphrase"
    secret.write_text("from the file")
    with pytest.raises(CAError) as doubled:
        load_settings(environ={"CA_SERVICE_KEY_PASSPHRASE": "from env", variable: str(secret)})
    assert doubled.value.detail == f"Set CA_SERVICE_KEY_PASSPHRASE or {variable}, not both."


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CA_SERVICE_MIN_RSA_BITS", "512", "CA_SERVICE_MIN_RSA_BITS = 512 is refused: the smallest RSA key"),
        ("CA_SERVICE_MAX_RSA_BITS", "2048000", "must be from 2048 to 16384"),
        ("CA_SERVICE_ALLOWED_CURVES", "secp256r1,secp192r1", "the supported curves are secp256r1, secp384r1"),
        ("CA_SERVICE_VALIDITY_DAYS", "-5", "_DAYS = -5 is refused: the validity of device certificates"),
        ("CA_SERVICE_VALIDITY_DAYS", "abc", "_DAYS = 'abc' is refused: it must be a whole number"),
        ("CA_SERVICE_CRL_LIFETIME_SECONDS", "-1", "the lifetime of a CRL"),
        ("CA_SERVICE_OCSP_LIFETIME_SECONDS", "0", "must be from 60 to 604800"),
        ("CA_SERVICE_PUBLIC_URL", "ca.example.com", "http:// or https:// URL with a host"),
        ("CA_SERVICE_PUBLIC_URL", "https://ca.example.com/?x=1", "must not have a query"),
        ("CA_SERVICE_ACME_TERMS_URL", "ftp://ca.example.com/terms", "http:// or https:// URL"),
        ("CA_SERVICE_DATABASE_URL", "garbage", "give a postgresql://USER@HOST/DATABASE URL"),
        ("CA_SERVICE_DATABASE_URL", "mysql://ca:pw@db/ca", "'mysql' databases are not supported"),
        ("CA_SERVICE_BIND", "127.0.0.1:80000", "the port 80000 is not within 1 to 65535"),
        ("CA_SERVICE_BIND", "localhost", "give HOST:PORT"),
        ("CA_SERVICE_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("CA_SERVICE_OUI_ALLOWLIST", "7C2F80,GIGASET", "1-12 uppercase hex digits"),
        ("CA_SERVICE_SUBJECT_COUNTRY", "Germany", "two-letter ISO 3166 code"),
        ("CA_SERVICE_DEFAULT_PROFILE", "nope", "the profiles are device"),
        ("CA_SERVICE_WRAPPING_KEY_URI", "file:keys/wrap", "pkcs11: URI"),
        ("CA_SERVICE_CRL_REFRESH_SECONDS", "90000", "keep it below crl_lifetime_seconds"),
        ("CA_SERVICE_RATE_LIMIT_MAC", "-1", "certificates per device MAC"),
    ],
)
def test_settings_outside_their_range_are_refused(variable: str, value: str, says: str) -> None:
    """Every refusal names the variable, the value and what is allowed (security floors
    included); a database URL, which may hold a password, is never repeated."""
    with pytest.raises(CAError) as refused:
        load_settings(environ={variable: value})
    assert refused.value.detail.startswith(variable) and says in refused.value.detail
    assert "pw" not in refused.value.detail


def test_a_refused_toml_value_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "ca.toml"
    config.write_text("validity_days = 0\n")
    with pytest.raises(CAError) as refused:
        load_settings(environ={"CA_SERVICE_CONFIG": str(config)})
    assert refused.value.detail.startswith(f"'validity_days' in {config} = 0 is refused")


def test_an_unknown_setting_names_the_closest_known_one(tmp_path: Path) -> None:
    """A misspelled variable is a warning (the environment holds other programs' variables
    too), a misspelled TOML key an error; both name the closest setting."""
    warnings = unknown_variables(
        {
            "CA_SERVICE_PUBLC_URL": "https://ca.example.net",
            "CA_SERVICE_RENEWAL_SHARE": "0.7",
            "CA_SERVICE_KEY_PASSPHRASE_FILE": "/run/credentials/x",
            "CA_SERVICE_CONFIG": "/etc/ca-service/ca-service.toml",
            "CA_SERVICE_ACCESS_LOG": "1",
            "HOME": "/root",
        }
    )
    assert warnings == [
        "CA_SERVICE_PUBLC_URL is not a setting and is ignored; did you mean CA_SERVICE_PUBLIC_URL?",
        "CA_SERVICE_RENEWAL_SHARE is not a setting and is ignored; "
        "did you mean CA_SERVICE_RENEWAL_WINDOW_START?",
    ]
    config = tmp_path / "ca.toml"
    config.write_text('publc_url = "https://ca.example.net"\n')
    with pytest.raises(CAError) as refused:
        load_settings(environ={"CA_SERVICE_CONFIG": str(config)})
    assert refused.value.detail == f"Unknown setting 'publc_url' in {config}; did you mean public_url?"


def test_sources_say_where_each_setting_came_from(tmp_path: Path) -> None:
    config = tmp_path / "ca.toml"
    config.write_text('public_url = "https://ca.example.net"\nhome = "/srv/ca"\n')
    workers = tmp_path / "workers"
    workers.write_text("3\n")
    settings = load_settings(
        environ={
            "CA_SERVICE_CONFIG": str(config),
            "CA_SERVICE_HOME": "/var/lib/ca-service",
            "CA_SERVICE_WORKERS_FILE": str(workers),
        },
        validity_days=30,
    )
    assert settings.sources == {
        "public_url": str(config),
        "home": "CA_SERVICE_HOME",
        "workers": "CA_SERVICE_WORKERS_FILE",
        "validity_days": "override",
    }
    assert settings.home == Path("/var/lib/ca-service") and "sources" not in settings.public_dump()
