"""SoftHSM2 for the PKCS#11 tests: a token folder in a temporary directory (SOFTHSM2_CONF), tokens
made with the real ``softhsm2-util``, and the fault operations the tests inflict on them."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "so-" + secrets.token_hex(4)


def softhsm_module() -> str | None:
    return next((m for m in MODULE_CANDIDATES if Path(m).is_file()), None)


def require_softhsm() -> str:
    """The SoftHSM2 module path. Missing softhsm2 fails on CI and skips (with the reason shown by
    ``-ra``) elsewhere."""
    module = softhsm_module()
    if module and shutil.which("softhsm2-util"):
        return module
    reason = "softhsm2 is not installed (scripts/system-deps.sh installs it): PKCS#11 tests cannot run"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class SoftHsm:
    """One SoftHSM2 configuration whose tokens live under ``root/tokens``."""

    def __init__(self, root: Path, module: str) -> None:
        self.module = module
        self.tokens = root / "tokens"
        self.tokens.mkdir(parents=True)
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        self.env = {"SOFTHSM2_CONF": str(self.conf)}

    def util(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run(
            ["softhsm2-util", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            input=input,
            check=True,
        )
        return done.stdout

    def new_token(self, pin_file: Path) -> Token:
        """Initialise a token in a free slot with a random label and user PIN (written to
        ``pin_file``, mode 0600)."""
        label = "t" + secrets.token_hex(6)
        pin = secrets.token_hex(8)
        before = set(self.tokens.iterdir())
        self.util("--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin)
        (folder,) = set(self.tokens.iterdir()) - before
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        return Token(self, label, pin, pin_file, folder)


class Token:
    def __init__(self, hsm: SoftHsm, label: str, pin: str, pin_file: Path, folder: Path) -> None:
        self.hsm, self.label, self.pin, self.pin_file, self.folder = hsm, label, pin, pin_file, folder
        # outside the token folder: SoftHSM2 takes every folder in it for a token
        self._away = hsm.tokens.parent / f"{folder.name}.away"
        self._backup = hsm.tokens.parent / f"{folder.name}.backup"

    def uri(self, name: str) -> str:
        return (
            f"pkcs11:token={self.label};object={name}"
            f"?module-path={self.hsm.module}&pin-source=file:{self.pin_file}"
        )

    # -- faults (done to the real token, from outside the service) ---------------------------
    def detach(self) -> None:
        """The token disappears (HSM unplugged / storage gone)."""
        self.folder.rename(self._away)

    def attach(self) -> None:
        self._away.rename(self.folder)

    def backup(self) -> None:
        shutil.copytree(self.folder, self._backup)

    def reinitialise(self) -> None:
        """Re-initialise the token with softhsm2-util: every object in it is erased."""
        self.hsm.util(
            "--init-token",
            "--token",
            self.label,
            "--label",
            self.label,
            "--so-pin",
            SO_PIN,
            "--pin",
            self.pin,
        )

    def restore(self) -> None:
        shutil.rmtree(self.folder)
        shutil.copytree(self._backup, self.folder)

    def private_objects(self) -> str:
        """``pkcs11-tool --list-objects --type privkey`` as the real OpenSC tool prints it."""
        return subprocess.run(
            [
                "pkcs11-tool",
                "--module",
                self.hsm.module,
                "--token-label",
                self.label,
                "--login",
                "--pin",
                self.pin,
                "--list-objects",
                "--type",
                "privkey",
            ],
            env={**os.environ, **self.hsm.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
