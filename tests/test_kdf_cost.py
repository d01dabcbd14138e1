"""The KDF cost setting: the test suite seals keys at a minimal cost, a deployment never can.

``kdf_cost = "minimal"`` needs ``test_only_settings = true`` beside it; ``ca-service config``
shows both; a wrapping key file names its cost in its format marker, and one sealed at the minimal
cost opens only where that cost is permitted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ca_service.cli import main
from ca_service.config import load_settings
from ca_service.errors import CAError, Kind
from ca_service.keystore.wrapping import MAGIC, file_wrapping_key


def test_standard_is_the_default() -> None:
    settings = load_settings(environ={})
    assert (settings.kdf_cost, settings.test_only_settings) == ("standard", False)


@pytest.mark.parametrize(
    "environ",
    [
        {"CA_SERVICE_KDF_COST": "minimal"},
        {"CA_SERVICE_KDF_COST": "minimal", "CA_SERVICE_TEST_ONLY_SETTINGS": "false"},
    ],
)
def test_minimal_cost_is_refused_outside_the_test_suite(environ: dict[str, str]) -> None:
    with pytest.raises(CAError) as refused:
        load_settings(environ=environ)
    assert refused.value.kind is Kind.MALFORMED
    assert "test suite only" in refused.value.detail and "'standard'" in refused.value.detail


def test_minimal_cost_in_a_config_file_is_refused_too(tmp_path: Path) -> None:
    config = tmp_path / "ca.toml"
    config.write_text('kdf_cost = "minimal"\n')
    with pytest.raises(CAError, match="test suite only"):
        load_settings(environ={"CA_SERVICE_CONFIG": str(config)})


def test_unknown_cost_is_refused() -> None:
    with pytest.raises(CAError, match="kdf_cost must be one of standard, minimal"):
        load_settings(environ={"CA_SERVICE_KDF_COST": "low", "CA_SERVICE_TEST_ONLY_SETTINGS": "1"})


def test_ca_service_config_shows_the_cost(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"CA_SERVICE_HOME": str(tmp_path)}
    standard = json.loads(runner.invoke(main, ["config"], env=env, catch_exceptions=False).output)
    assert (standard["kdf_cost"], standard["test_only_settings"]) == ("standard", False)
    lowered = {**env, "CA_SERVICE_KDF_COST": "minimal", "CA_SERVICE_TEST_ONLY_SETTINGS": "true"}
    shown = json.loads(runner.invoke(main, ["config"], env=lowered, catch_exceptions=False).output)
    assert (shown["kdf_cost"], shown["test_only_settings"]) == ("minimal", True)
    refused = runner.invoke(main, ["config"], env={**env, "CA_SERVICE_KDF_COST": "minimal"})
    assert refused.exit_code != 0 and "test suite only" in refused.output
    assert "Traceback" not in refused.output


def test_wrapping_key_file_names_its_cost(tmp_path: Path) -> None:
    minimal = load_settings(
        environ={}, home=tmp_path / "a", key_passphrase="pw", kdf_cost="minimal", test_only_settings=True
    )
    key = file_wrapping_key(minimal)
    sealed = (minimal.keys_dir / "wrapping.key").read_bytes()
    assert not sealed.startswith(MAGIC) and key.key not in sealed
    assert file_wrapping_key(minimal) == key
    # the same file under standard settings (a test home copied into a deployment) is refused
    standard = load_settings(environ={}, home=tmp_path / "a", key_passphrase="pw")
    with pytest.raises(CAError) as refused:
        file_wrapping_key(standard)
    assert refused.value.kind is Kind.UNAVAILABLE and "test-only minimal KDF cost" in refused.value.detail


def test_standard_file_opens_under_either_setting(tmp_path: Path) -> None:
    standard = load_settings(environ={}, home=tmp_path, key_passphrase="pw")
    key = file_wrapping_key(standard)
    assert (standard.keys_dir / "wrapping.key").read_bytes().startswith(MAGIC)
    minimal = load_settings(
        environ={}, home=tmp_path, key_passphrase="pw", kdf_cost="minimal", test_only_settings=True
    )
    assert file_wrapping_key(minimal).key == key.key  # the file's own (standard) parameters
