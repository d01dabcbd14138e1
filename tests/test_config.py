"""Settings: defaults <- TOML <- environment; profiles take the site defaults they leave unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca_service.config import load_settings
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
