"""Reading the deployment files: docker-compose.yml, .env.example, deploy/Dockerfile, the
Kubernetes manifests and requirements.lock, as plain data for the tests beside this module."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from centrapay_sandbox import SandboxSettings
from distributor.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
K8S_DIR = REPO / "deploy" / "k8s"

ROLE_LABEL = "app.kubernetes.io/component"
ENV_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def setting_names() -> set[str]:
    """Every environment variable distributor reads: Settings and SANDBOX_ + SandboxSettings."""
    prefix = SandboxSettings.model_config.get("env_prefix", "")
    return {name.upper() for name in Settings.model_fields} | {
        prefix + name.upper() for name in SandboxSettings.model_fields
    }


# ---- docker-compose.yml


def compose() -> dict[str, Any]:
    """docker-compose.yml, anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def runs_our_image(service: dict[str, Any]) -> bool:
    """True for a service built from deploy/Dockerfile."""
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"


def our_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the distributor image, by name (= role)."""
    return {name: svc for name, svc in compose()["services"].items() if runs_our_image(svc)}


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's own ``environment``, list or mapping form, values as strings."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def service_env_files(service: dict[str, Any]) -> list[str]:
    """The paths of a service's ``env_file`` entries, in order."""
    entries = service.get("env_file") or []
    if isinstance(entries, str | dict):
        entries = [entries]
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


# ---- .env.example


@dataclass(frozen=True, kw_only=True)
class EnvLine:
    """One ``NAME=value`` line of .env.example, maybe commented out, and its comment."""

    name: str
    value: str
    commented_out: bool
    comment: str


def env_example_lines() -> list[EnvLine]:
    """Every ``NAME=value`` and ``# NAME=value`` line, with the comment line above it."""
    found = []
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            found.append(
                EnvLine(
                    name=match["name"],
                    value=match["value"],
                    commented_out=bool(match["commented"]),
                    comment=previous,
                )
            )
        previous = line.strip()
    return found


def env_file_values(path: Path) -> dict[str, str]:
    """The variables a dotenv file sets (commented-out lines set nothing)."""
    return {name: value or "" for name, value in dotenv_values(path).items()}


# ---- requirements.lock


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One ``name==version ; marker`` line of requirements.lock."""

    name: str
    version: str
    requirement: Requirement

    def applies_here(self) -> bool:
        """True when its marker (if any) holds for the running interpreter and platform."""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def lock_pins() -> dict[str, Pin]:
    """requirements.lock's pins by canonical name; every line must be an exact ``==`` pin."""
    pins: dict[str, Pin] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"requirements.lock: {line!r} is not an exact pin"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = Pin(name=name, version=specifier.version, requirement=requirement)
    return pins


def pyproject() -> dict[str, Any]:
    """pyproject.toml."""
    with PYPROJECT.open("rb") as file:
        loaded: dict[str, Any] = tomllib.load(file)
    return loaded


# ---- deploy/Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_exec_form(keyword: str) -> list[str]:
    """The JSON (exec form) arguments of the Dockerfile's last ``keyword`` instruction."""
    arguments = [args for kw, args in dockerfile_instructions() if kw == keyword][-1]
    if keyword == "HEALTHCHECK":
        arguments = arguments[arguments.index("CMD ") + len("CMD ") :]
    parsed: list[str] = json.loads(arguments)
    return parsed


def dockerfile_variables() -> set[str]:
    """Names set by the Dockerfile's ENV and ARG instructions."""
    names = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword in ("ENV", "ARG"):
            names |= {pair.split("=", 1)[0] for pair in arguments.split()}
    return names


# ---- deploy/k8s


def k8s_documents() -> list[dict[str, Any]]:
    """Every object in deploy/k8s/*.yaml."""
    documents = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


@dataclass(frozen=True, kw_only=True)
class K8sContainer:
    """A container of a Deployment or Job, with its workload and pod spec."""

    role: str
    workload: dict[str, Any]
    pod: dict[str, Any]
    container: dict[str, Any]


def k8s_containers() -> Iterator[K8sContainer]:
    """Every container of every Deployment and Job, with the role it plays."""
    for doc in k8s_documents():
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                yield K8sContainer(
                    role=doc["metadata"]["labels"][ROLE_LABEL],
                    workload=doc,
                    pod=pod,
                    container=container,
                )
