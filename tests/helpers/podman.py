"""A real container engine for `tests/containers/`: podman as root, its configuration in a file of
our own (`CONTAINERS_CONF`; the system's is left alone), local stand-ins for the upstream base
images (Debian bookworm from `debootstrap` + `podman import`: no registry image can be pulled in
CI) and the project's images built on them, each cached by the hash of what went into it.

The stand-in base carries the host's pip configuration (`pip config list`: its CA bundle,
constraints, find-links and local indexes, the folders mounted at build time), so a build reaches
the same packages `make setup` does, and pins torch and torchvision to the pair the project's venv
has: a CPU torch wheel beside PyPI's torchvision (built for PyPI's CUDA torch) loses torchvision's
operators (`torchvision::nms does not exist`), so the exporter stand-in carries the CUDA pair, as
the default build from PyPI does.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "libpython3.11", "ca-certificates")
SERVICE_PACKAGES = ("redis-server", "prometheus", "nginx", "wget")
REPO = "localhost/trident-ci"
NPROC = 16384  # runc could not set this machine's own process limit (96367) in a container; 16384 it can
DROP = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")


def engine_env(folder: Path) -> dict[str, str]:
    """The environment that runs podman with our containers.conf: runc (crun fails on this
    kernel's hybrid cgroups), cgroupfs (no systemd), ulimits no higher than ours (podman's own
    defaults are higher, and runc may not raise them)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], NPROC)
    limits = f'"nofile={nofile[0]}:{nofile[1]}", "nproc={nproc}:{nproc}"'
    conf = folder / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f"default_ulimits = [{limits}]\n"
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(env: dict[str, str], *args: str, timeout: float = 600, check: bool = True) -> str:
    """Run podman; its stdout, or a test failure that shows what it said."""
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} ... exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout


def logs(env: dict[str, str], container: str) -> str:
    """What the container wrote, stdout and stderr (podman gives each on its own stream)."""
    done = subprocess.run(
        ["podman", "logs", container], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    return done.stdout.decode(errors="replace")


def image_exists(env: dict[str, str], tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], env=env, check=False).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (its sources, read now: never a committed host)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        for stanza in text.split("\n\n"):  # deb822: URIs + Suites
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():  # one-line style: deb [options] URI suite components
            words = re.sub(r"\[.*?\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    pytest.fail(f"no Debian {SUITE} mirror in /etc/apt/sources.list*")


@dataclass(frozen=True)
class PipConfig:
    """The host's pip configuration, as a pip.conf for the stand-in base and the host folders its
    builds mount (find-links and file:// indexes)."""

    conf: str
    ca_bundle: Path | None
    constraints: str
    mounts: tuple[Path, ...]


def host_pip_config() -> PipConfig:
    listed = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pip"), "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    values: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key.split(".", 1)[1], value.strip("'"))
    cert = values.pop("cert", os.environ.get("PIP_CERT", ""))
    constraint = values.pop("constraint", "")
    constraints = Path(constraint).read_text() if constraint and Path(constraint).is_file() else ""
    mounts: list[Path] = []
    for location in (values.get("find-links", "") + " " + values.get("extra-index-url", "")).split():
        path = Path(location.removeprefix("file://"))
        if (location.startswith("file://") or location.startswith("/")) and path.is_dir():
            root = path.parent if path.name == "simple" else path
            mounts.append(root)
    # the pair the tests' own venv runs (the one `make setup` made)
    constraints += "".join(f"\n{name}=={version(name)}" for name in ("torch", "torchvision")) + "\n"
    values["constraint"] = "/etc/pip-constraints.txt"
    if cert:
        values["cert"] = cert
    conf = "[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(values.items()))
    return PipConfig(conf, Path(cert) if cert else None, constraints, tuple(dict.fromkeys(mounts)))


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def build_base(env: dict[str, str], work: Path, pip: PipConfig) -> str:
    """The stand-in for `python:3.11-slim`: Debian bookworm with Python 3.11 (and libpython, which
    Triton's stub embeds), the host's pip configuration and CA bundle. Cached by its inputs."""
    mirror = debian_mirror()
    ca = pip.ca_bundle.read_bytes() if pip.ca_bundle else b""
    tag = f"{REPO}/python-base:{_digest(SUITE, mirror, *BASE_PACKAGES, pip.conf, pip.constraints, ca)}"
    if image_exists(env, tag):
        return tag
    rootfs = Path(tempfile.mkdtemp(dir=work, prefix="rootfs-"))
    try:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            check=True,
            timeout=900,
        )
        for drop in DROP:
            shutil.rmtree(rootfs / drop, ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        (rootfs / "etc/pip.conf").write_text(pip.conf)
        (rootfs / "etc/pip-constraints.txt").write_text(pip.constraints)
        if pip.ca_bundle:
            target = rootfs / str(pip.ca_bundle).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ca)
        tarball = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    changes = ["ENV=PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "CMD=/bin/bash"]
    if pip.ca_bundle:
        changes.append(f"ENV=PIP_CERT={pip.ca_bundle}")
    podman(env, "import", *[a for c in changes for a in ("--change", c)], str(tarball), tag)
    tarball.unlink()
    return tag


def context_digest(ignored: Sequence[str]) -> str:
    """The hash of the build context: the project's files (git's view) minus `.dockerignore`'s
    top-level entries; an edit anywhere that reaches an image changes it."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    h = hashlib.sha256()
    for name in sorted(f for f in files if f and f.split("/")[0] not in ignored and (ROOT / f).is_file()):
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def dockerignore_tops(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


@dataclass
class Builder:
    """Builds the project's Dockerfiles on the stand-in base, each image tagged by the hash of its
    Dockerfile, base and context (a later run finds it; CI without the cache builds it)."""

    env: dict[str, str]
    base: str
    pip: PipConfig

    def build(self, dockerfile: str, name: str, ignorefile: Path | None = None) -> str:
        ignore = ignorefile or ROOT / ".dockerignore"
        key = _digest(
            (ROOT / dockerfile).read_text(),
            self.base,
            ignore.read_text(),
            context_digest(dockerignore_tops(ignore)),
        )
        tag = f"{REPO}/{name}:{key}"
        if image_exists(self.env, tag):
            return tag
        mounts = [a for m in self.pip.mounts for a in ("--volume", f"{m}:{m}:ro")]
        podman(
            self.env,
            "build",
            "--quiet",
            "-f",
            dockerfile,
            "--build-arg",
            f"BASE={self.base}",
            "--ignorefile",
            str(ignore),
            *mounts,
            "-t",
            tag,
            str(ROOT),
            timeout=1500,
        )
        return tag

    def build_text(self, containerfile: str, name: str) -> str:
        """An image from a Containerfile given as text (the service stand-ins)."""
        tag = f"{REPO}/{name}:{_digest(containerfile, self.base)}"
        if image_exists(self.env, tag):
            return tag
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "Containerfile").write_text(containerfile)
            podman(
                self.env,
                "build",
                "--quiet",
                "--build-arg",
                f"BASE={self.base}",
                "-t",
                tag,
                folder,
                timeout=900,
            )
        return tag
