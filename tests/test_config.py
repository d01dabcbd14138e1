"""Settings: defaults <- TOML <- environment; profiles take the site defaults they leave unset."""

from __future__ import annotations

from pathlib import Path

from ca_service.config import load_settings


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
