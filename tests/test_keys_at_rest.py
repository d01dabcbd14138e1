"""CA keys at rest (issue 13, medium 4): what a copied home folder gives away.

File keys are PKCS#8 sealed with PBES2-scrypt (the openssl CLI opens them); files sealed the old
way (PBKDF2, 2048 rounds) keep working and are sealed again; a production ``ca-service init``
takes the passphrase from the environment, a file outside the home or the systemd credential,
refuses weak ones, and writes nothing when it refuses; a passphrase in the home is warned about.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from ca_service import Services, build_services
from ca_service.cli import main
from ca_service.config import Settings, load_settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind
from ca_service.issuers import lifecycle
from ca_service.keystore.file import PKCS8_SCRYPT, WEAK_PASSPHRASE, FileKeyStore, scrypt_cost
from ca_service.store import Database
from ca_service.store.models import Base
from tests.helpers import openssl

STRONG = "correct horse battery staple, quite long"
TEST_KDF = {"CA_SERVICE_KDF_COST": "minimal", "CA_SERVICE_TEST_ONLY_SETTINGS": "true"}


def rows(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.read() as session:
            return {
                t.name: session.scalar(select(func.count()).select_from(t)) or 0
                for t in Base.metadata.sorted_tables
            }
    finally:
        db.dispose()


def files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and "ca.db" not in p.name)


@pytest.fixture
def empty(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI on an empty database (schema only) and a new home."""
    return {"CA_SERVICE_HOME": str(tmp_path / "home"), "CA_SERVICE_DATABASE_URL": database_url, **TEST_KDF}


def init(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["init", *args], env=env)


# -- production init: where the passphrase comes from ---------------------------------------------
def test_production_init_refuses_a_passphrase_in_the_home(
    empty: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    home = Path(empty["CA_SERVICE_HOME"])
    inside = home / "passphrase.txt"
    home.mkdir()
    inside.write_text(STRONG + "\n")
    before = rows(database_url)
    for env in (empty, {**empty, "CA_SERVICE_KEY_PASSPHRASE_FILE": str(inside)}):
        refused = init(env)
        assert refused.exit_code == 1, refused.output
        assert "a copy of the home folder would then be the CA" in refused.output
        assert "CA_SERVICE_KEY_PASSPHRASE_FILE" in refused.output and "--dev" in refused.output
        assert rows(database_url) == before and files(home) == ["passphrase.txt"]


@pytest.mark.parametrize(
    "weak", ["s3cret", "aaaaaaaaaaaaaaaaaaaaaaaa", "1234567890123456", "passwordpassword"]
)
def test_production_init_refuses_weak_passphrases(
    empty: dict[str, str], database_url: str, weak: str
) -> None:
    before = rows(database_url)
    refused = init({**empty, "CA_SERVICE_KEY_PASSPHRASE": weak})
    assert refused.exit_code == 1 and WEAK_PASSPHRASE in refused.output
    assert rows(database_url) == before
    home = Path(empty["CA_SERVICE_HOME"])
    assert not (home / "keys").exists()


def test_production_init_with_a_systemd_credential(empty: dict[str, str], tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "key-passphrase").write_text(STRONG + "\n")
    made = init({**empty, "CREDENTIALS_DIRECTORY": str(credentials)})
    assert made.exit_code == 0, made.output
    home = Path(empty["CA_SERVICE_HOME"])
    assert not (home / "keys" / "passphrase").exists()  # nothing of the passphrase in the home
    settings = load_settings(environ={**empty, "CREDENTIALS_DIRECTORY": str(credentials)})
    assert settings.key_passphrase == STRONG
    assert settings.key_passphrase_origin == str(credentials / "key-passphrase")
    assert settings.public_dump()["key_passphrase_origin"] == str(credentials / "key-passphrase")


def test_production_init_with_a_file_outside_the_home(empty: dict[str, str], tmp_path: Path) -> None:
    outside = tmp_path / "etc" / "key-passphrase"
    outside.parent.mkdir()
    outside.write_text(STRONG)
    made = init({**empty, "CA_SERVICE_KEY_PASSPHRASE_FILE": str(outside)})
    assert made.exit_code == 0, made.output
    keys = sorted(p.name for p in (Path(empty["CA_SERVICE_HOME"]) / "keys").iterdir())
    assert "passphrase" not in keys and any(k.startswith("issuing-") for k in keys)


def test_dev_init_keeps_the_generated_passphrase_and_says_so(empty: dict[str, str]) -> None:
    made = init(empty, "--dev")
    assert made.exit_code == 0, made.output
    assert "WARNING: development CA" in made.output and "copy of the home" in made.output
    assert (Path(empty["CA_SERVICE_HOME"]) / "keys" / "passphrase").exists()


def test_a_passphrase_file_in_the_home_is_a_loud_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    inside = home / "keys" / "my-passphrase"
    inside.write_text(STRONG)
    settings = load_settings(
        environ={"CA_SERVICE_HOME": str(home), "CA_SERVICE_KEY_PASSPHRASE_FILE": str(inside), **TEST_KDF}
    )
    with capture("ca_service.keystore") as records:
        store = FileKeyStore(settings)
        store.create("file:keys/a.pem", KeyType.EC_P256)
        store.load("file:keys/a.pem")
    warnings = [r for r in records if "inside the service home" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per process
    assert warnings[0].passphrase_file == str(inside)  # type: ignore[attr-defined]


class _ListHandler(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


class capture:
    """The records a logger emits inside the block (our loggers do not propagate)."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []
        self.handler = _ListHandler(self.records)

    def __enter__(self) -> list[logging.LogRecord]:
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


# -- the sealed files ------------------------------------------------------------------------------
def test_new_key_files_are_scrypt_sealed_and_open_with_openssl(tmp_path: Path) -> None:
    """At the standard cost (what a deployment gets): PBES2 with scrypt N=2^14, r=8, p=4, which
    the openssl CLI opens with the passphrase and nothing else."""
    settings = load_settings(environ={}, home=tmp_path, key_passphrase=STRONG)
    key = FileKeyStore(settings).create("file:keys/issuing.pem", KeyType.EC_P256)
    pem = (tmp_path / "keys" / "issuing.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert scrypt_cost(pem) == PKCS8_SCRYPT["standard"] == (2**14, 8, 4)
    parsed = openssl("asn1parse", "-in", str(tmp_path / "keys" / "issuing.pem")).stdout.decode()
    assert ":PBES2" in parsed and ":scrypt" in parsed and ":aes-256-cbc" in parsed and ":4000\n" in parsed
    (tmp_path / "pass").write_text(STRONG)
    opened = openssl(
        "pkey",
        "-in",
        str(tmp_path / "keys" / "issuing.pem"),
        "-passin",
        f"file:{tmp_path / 'pass'}",
        "-pubout",
    ).stdout
    assert opened == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrong = openssl(
        "pkey", "-in", str(tmp_path / "keys" / "issuing.pem"), "-passin", "pass:wrong", check=False
    )
    assert wrong.returncode != 0


def _legacy(path: Path, passphrase: str, key: SigningKey | None = None) -> SigningKey:
    """``key`` (a new one by default) written as earlier versions wrote key files:
    cryptography's BestAvailableEncryption, PBES2 with PBKDF2-HMAC-SHA256 at 2048 rounds."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    return key


def test_old_key_files_open_and_are_sealed_again_on_first_load(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=tmp_path, key_passphrase=STRONG)
    key = _legacy(tmp_path / "keys" / "old.pem", STRONG)
    assert scrypt_cost((tmp_path / "keys" / "old.pem").read_bytes()) is None
    store = FileKeyStore(settings)
    with capture("ca_service.keystore") as records:
        loaded = store.load("file:keys/old.pem")
    assert loaded.private_numbers() == key.private_numbers()
    assert scrypt_cost((tmp_path / "keys" / "old.pem").read_bytes()) == PKCS8_SCRYPT["standard"]
    assert any("sealed again with scrypt" in r.getMessage() for r in records)
    assert store.load("file:keys/old.pem").private_numbers() == key.private_numbers()
    assert store.reseal("file:keys/old.pem") is False  # nothing left to do


def test_a_read_only_old_key_file_still_opens(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=tmp_path, key_passphrase=STRONG)
    key = _legacy(tmp_path / "ro" / "old.pem", STRONG)
    (tmp_path / "ro").chmod(0o500)
    try:
        with capture("ca_service.keystore") as records:
            loaded = FileKeyStore(settings).load(f"file://{tmp_path}/ro/old.pem")
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert loaded.private_numbers() == key.private_numbers()
    if os.geteuid() != 0:  # root writes anyway
        assert any("not writable" in r.getMessage() for r in records)


def test_minimal_cost_files_do_not_open_where_that_cost_is_not_permitted(tmp_path: Path) -> None:
    cheap = load_settings(
        environ={}, home=tmp_path, key_passphrase=STRONG, kdf_cost="minimal", test_only_settings=True
    )
    FileKeyStore(cheap).create("file:keys/cheap.pem", KeyType.EC_P256)
    assert scrypt_cost((tmp_path / "keys" / "cheap.pem").read_bytes()) == PKCS8_SCRYPT["minimal"]
    standard = load_settings(environ={}, home=tmp_path, key_passphrase=STRONG)
    with pytest.raises(CAError) as refused:
        FileKeyStore(standard).load("file:keys/cheap.pem")
    assert refused.value.kind is Kind.UNAVAILABLE and "test-only minimal KDF cost" in refused.value.detail


def test_keys_reseal_seals_an_existing_home_again(
    services: Services, settings: Settings, env_for: dict[str, str]
) -> None:
    """An existing home with PBKDF2 key files (as made before): the service keeps working and
    ``ca-service keys reseal`` moves every key to scrypt, keys unchanged."""
    store = FileKeyStore(settings)
    uris = [r.key_uri for r in lifecycle.records(services.db)]
    keys = {uri: _legacy(store.path_of(uri), store.passphrase().decode(), store.load(uri)) for uri in uris}
    assert all(scrypt_cost(store.path_of(uri).read_bytes()) is None for uri in uris)
    worker = build_services(settings)  # a worker starting on the old files signs as before
    try:
        worker.signers.self_test()
    finally:
        worker.db.dispose()
    done = CliRunner().invoke(main, ["keys", "reseal"], env=env_for)
    assert done.exit_code == 0, done.output
    assert "root-" in done.output and "sealed again with scrypt" in done.output
    for uri in uris:
        assert scrypt_cost(store.path_of(uri).read_bytes()) == PKCS8_SCRYPT[settings.kdf_cost]
        assert store.load(uri).private_numbers() == keys[uri].private_numbers()
    again = CliRunner().invoke(main, ["keys", "reseal"], env=env_for)
    assert again.exit_code == 0 and "sealed again with scrypt" not in again.output


def test_copying_the_home_of_a_production_ca_gives_no_key(empty: dict[str, str], tmp_path: Path) -> None:
    """The README's claim: the home of a production init holds no passphrase, so a copy of it
    (a backup, a stolen disk) opens no CA key."""
    outside = tmp_path / "etc" / "key-passphrase"
    outside.parent.mkdir()
    outside.write_text(STRONG)
    assert init({**empty, "CA_SERVICE_KEY_PASSPHRASE_FILE": str(outside)}).exit_code == 0
    home = Path(empty["CA_SERVICE_HOME"])
    assert STRONG.encode() not in b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    pems = list((home / "keys").glob("*.pem"))
    assert len(pems) == 2
    for pem in pems:
        with pytest.raises((TypeError, ValueError)):
            serialization.load_pem_private_key(pem.read_bytes(), None)
