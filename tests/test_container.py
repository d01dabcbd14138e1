"""deploy/Containerfile built and run with podman (Debian's package): the image builds the wheel
and installs it with the hsm extra, runs as ca-service on a volume it can write, takes the key
passphrase from a podman secret, and on an empty volume refuses to start unless told --dev or
given a CA made with `init`.

The Containerfile's base is python:3.11-slim-bookworm from a registry this machine cannot reach;
the test builds on a Debian bookworm made with debootstrap from Debian's packages (python3,
python3-venv, python3-pip), imported once as a local image and kept for later runs."""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.helpers import REPO, free_port, have, make_csr

pytestmark = pytest.mark.slow

BASE = "localhost/ca-service-test-base:bookworm"
IMAGE = "localhost/ca-service-test:latest"
# this machine's kernel runs containers with runc (crun refuses its hybrid cgroup layout), and
# podman's default ulimits are above what it may set: use the limits it has
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n"


class Podman:
    """The podman command, as root, with the settings this machine needs (CONTAINERS_CONF)."""

    def __init__(self, tmp: Path) -> None:
        if not all(have(tool) for tool in ("podman", "runc", "debootstrap")):
            pytest.fail("podman, runc and debootstrap are needed; scripts/system-deps.sh installs them")
        conf = tmp / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", "--runtime", "runc", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.stderr[-3000:]}")
        return result


def _make_base(podman: Podman, tmp: Path) -> None:
    """Debian bookworm with Python from Debian's packages, as a local image."""
    rootfs = tmp / "rootfs"
    packages = "python3,python3-venv,python3-pip,ca-certificates"
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    archive = tmp / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    podman("import", str(archive), BASE)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with the image of deploy/Containerfile built from this tree (removed afterwards)."""
    tmp = tmp_path_factory.mktemp("container")
    engine = Podman(tmp)
    if engine("image", "exists", BASE, check=False).returncode != 0:
        _make_base(engine, tmp)
    # pip in the build trusts what this machine trusts (a TLS-inspecting proxy's CA, if any)
    ca_bundle = os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile
    trust = ("-v", f"{ca_bundle}:/run/proxy-ca.pem:ro", "--build-arg", "PIP_CERT=/run/proxy-ca.pem")
    engine(
        *("build", "--pull=never", "--layers=false", "-f", str(REPO / "deploy" / "Containerfile")),
        *("--build-arg", f"PYTHON_IMAGE={BASE}", "-t", IMAGE, *(trust if ca_bundle else ())),
        str(REPO),
    )
    yield engine
    engine("rmi", "-f", IMAGE, check=False)


@dataclass
class Volume:
    """A named volume for /var/lib/ca-service and the podman secret with its key passphrase."""

    name: str
    secret: str

    @property
    def mount(self) -> tuple[str, ...]:
        return ("-v", f"{self.name}:/var/lib/ca-service")

    @property
    def passphrase(self) -> tuple[str, ...]:
        """The secret where the entrypoint looks for it (/run/secrets/ca-service-key-passphrase)."""
        return ("--secret", f"{self.secret},target=ca-service-key-passphrase")

    def files(self, podman: Podman) -> dict[str, tuple[str, str]]:
        """Path (relative to the volume, "" for its root) -> (owner, octal mode) of what it holds."""
        listing = podman(
            *("run", "--rm", *self.mount, "--entrypoint", "find", IMAGE),
            *("/var/lib/ca-service", "-printf", "%P\t%u\t%m\n"),
        )
        return {
            path: (owner, mode)
            for path, owner, mode in (line.split("\t") for line in listing.stdout.splitlines())
        }


@pytest.fixture
def volumes(podman: Podman) -> Iterator[Callable[[], Volume]]:
    """Makes fresh volumes, each with its passphrase secret; removes them and every container."""
    made: list[Volume] = []

    def make() -> Volume:
        volume = Volume(f"ca-test-{secrets.token_hex(4)}", f"ca-test-{secrets.token_hex(4)}")
        podman("volume", "create", volume.name)
        podman("secret", "create", volume.secret, "-", stdin=secrets.token_urlsafe(32))
        made.append(volume)
        return volume

    yield make
    for volume in made:
        for container in podman("ps", "-aq", "--filter", f"volume={volume.name}").stdout.split():
            podman("rm", "-f", container, check=False)
        podman("volume", "rm", "-f", volume.name, check=False)
        podman("secret", "rm", volume.secret, check=False)


def test_an_empty_volume_is_refused_without_dev_or_a_ca(
    podman: Podman, volumes: Callable[[], Volume]
) -> None:
    """Without the passphrase secret: refused before anything is written. With it: migrated,
    then refused because there is no CA; no key and no passphrase were made on the volume."""
    volume = volumes()
    bare = podman("run", "--rm", *volume.mount, IMAGE, check=False)
    assert bare.returncode == 1 and "no key passphrase" in bare.stderr
    assert volume.files(podman) == {"": ("ca-service", "700")}  # made for the user before VOLUME
    with_secret = podman("run", "--rm", *volume.mount, *volume.passphrase, IMAGE, check=False)
    assert with_secret.returncode == 1, with_secret.stderr
    assert "There is no issuing CA: run 'ca-service init' first" in with_secret.stderr
    assert set(volume.files(podman)) == {"", "ca.db", "ca.db.lock"}  # the start-up lock


def test_a_ca_made_with_the_secret_serves_and_a_dev_volume_stays_dev(
    podman: Podman, volumes: Callable[[], Volume], tmp_path: Path
) -> None:
    """init with the secret, then the default command serves it: a certificate is issued through
    the published port, and the volume holds the CA's keys (all the user's) but no passphrase.
    A volume started with --dev gets a development CA whose passphrase is on the volume, and
    the production command refuses it."""
    volume = volumes()
    podman("run", "--rm", *volume.mount, *volume.passphrase, IMAGE, "init")
    create_token = ("token", "create", "--role", "admin", "--name", "test")
    token = podman("run", "--rm", *volume.mount, IMAGE, *create_token).stdout.strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = ("-e", "CA_SERVICE_WORKERS=1", "-e", f"CA_SERVICE_PUBLIC_URL={base}")
    published = ("-p", f"127.0.0.1:{port}:8000")
    served = podman("run", "-d", *published, *volume.mount, *volume.passphrase, *settings, IMAGE)
    _wait_ready(podman, served.stdout.strip(), base)
    _, csr = make_csr(tmp_path, "7C2F80C0FFEE")
    admin = {"Authorization": f"Bearer {token}"}
    issued = requests.post(
        f"{base}/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin, timeout=30
    )
    assert issued.status_code == 201, issued.text
    podman("rm", "-f", served.stdout.strip())
    files = volume.files(podman)
    assert {owner for owner, _ in files.values()} == {"ca-service"}, files
    assert any(path.startswith("keys/issuing-") for path in files) and "keys/passphrase" not in files

    dev_volume = volumes()
    dev = podman("run", "-d", *dev_volume.mount, IMAGE, "--dev")
    _wait_ready(podman, dev.stdout.strip(), None)
    podman("rm", "-f", dev.stdout.strip())
    assert "keys/passphrase" in dev_volume.files(podman)
    refused = podman("run", "--rm", *dev_volume.mount, *dev_volume.passphrase, IMAGE, check=False)
    assert refused.returncode == 1 and "the volume holds a key passphrase" in refused.stderr


def _wait_ready(podman: Podman, container: str, base: str | None) -> None:
    """Until the container's gunicorn worker reports its self-test (and, with ``base``, /healthz
    answers 200 through the published port); fails when the container exits or after a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = podman("logs", container).stderr
        if podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() != "true":
            raise AssertionError("the container exited: " + logs[-3000:])
        if '"crl": "ok"' in logs and (
            base is None or requests.get(f"{base}/healthz", timeout=5).status_code == 200
        ):
            return
        time.sleep(0.5)
    raise AssertionError("the container did not become ready: " + podman("logs", container).stderr[-3000:])
