"""The Dockerfile, docker-compose.yml, .env.example and the Kubernetes manifests agree with
each other and with the code: same command per role, only real settings; and the image, the
tests and pyproject.toml agree on requirements.lock's pinned versions."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest
import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from centrapay_sandbox import SandboxSettings
from distributor.cli import app
from distributor.config import Settings
from tests.deploy.deployfiles import (
    ENV_EXAMPLE,
    dockerfile_exec_form,
    dockerfile_instructions,
    dockerfile_variables,
    env_example_lines,
    k8s_containers,
    k8s_kind,
    lock_pins,
    our_services,
    pyproject,
    service_environment,
    setting_names,
)

ROLES = ["migrate", "api", "worker", "beat", "flower", "sandbox"]
IMAGE = "distributor:0.1.0"


def _compose_command(role: str) -> list[str]:
    command: list[str] = our_services()[role]["command"]
    return command


def _k8s_command(container: dict[str, Any]) -> list[str]:
    """What the container runs after the image's ENTRYPOINT (``distributor``)."""
    command = container.get("command")
    if command is not None:
        assert command[0] == "distributor", f"{container['name']} runs {command}"
        return [*command[1:], *container.get("args", [])]
    args: list[str] = container.get("args", [])
    return args


def test_compose_runs_every_role_from_the_one_image() -> None:
    services = our_services()
    assert sorted(services) == sorted(ROLES)
    assert {service["image"] for service in services.values()} == {IMAGE}
    assert not [name for name, service in services.items() if "entrypoint" in service]


def test_the_image_runs_distributor_and_serves_the_api_by_default() -> None:
    assert dockerfile_exec_form("ENTRYPOINT") == ["distributor"]
    assert dockerfile_exec_form("CMD") == _compose_command("api")


def test_the_image_health_check_is_the_api_health_check_of_compose() -> None:
    assert ["CMD", *dockerfile_exec_form("HEALTHCHECK")] == our_services()["api"]["healthcheck"][
        "test"
    ]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_a_real_distributor_subcommand(role: str) -> None:
    command: Any = typer.main.get_command(app)
    ctx = command.context_class(command)
    words = _compose_command(role)
    for word in words:
        if not hasattr(command, "get_command"):
            break
        command = command.get_command(ctx, word)
        assert command is not None, f"`distributor {' '.join(words)}` is not a command"
    assert not hasattr(command, "get_command"), f"`distributor {' '.join(words)}` needs more"


def test_kubernetes_runs_every_role_with_the_compose_command() -> None:
    containers = list(k8s_containers())
    assert sorted(c.role for c in containers) == sorted(ROLES)
    for c in containers:
        assert _k8s_command(c.container) == _compose_command(c.role), c.role
        assert c.container["image"] == IMAGE, c.role


def _listens_on_all_interfaces(command: list[str], env: dict[str, str]) -> bool:
    return "0.0.0.0" in command or "0.0.0.0" in env.values()


def test_each_role_with_a_published_port_listens_beyond_its_own_container() -> None:
    published = {name: s for name, s in our_services().items() if s.get("ports")}
    assert sorted(published) == ["api", "flower", "sandbox"]
    for name, service in published.items():
        assert _listens_on_all_interfaces(service["command"], service_environment(service)), name
    for c in k8s_containers():
        if c.container.get("ports"):
            env = {v["name"]: v.get("value", "") for v in c.container.get("env", [])}
            assert _listens_on_all_interfaces(_k8s_command(c.container), env), c.role


def test_beat_runs_exactly_once_even_during_a_rollout() -> None:
    (beat,) = [c.workload for c in k8s_containers() if c.role == "beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_kubernetes_pods_run_as_the_image_user_without_service_links() -> None:
    for c in k8s_containers():
        assert c.pod["enableServiceLinks"] is False, c.role
        assert c.pod["securityContext"]["runAsNonRoot"] is True, c.role
        assert c.container["securityContext"]["allowPrivilegeEscalation"] is False, c.role


def _k8s_config_keys() -> tuple[set[str], set[str]]:
    (config_map,) = k8s_kind("ConfigMap")
    (secret,) = k8s_kind("Secret")
    return set(config_map["data"]), set(secret.get("stringData", {})) | set(secret.get("data", {}))


def test_kubernetes_pods_read_the_config_map_and_secret_that_exist() -> None:
    config_map_name = k8s_kind("ConfigMap")[0]["metadata"]["name"]
    secret_name = k8s_kind("Secret")[0]["metadata"]["name"]
    for c in k8s_containers():
        for source in c.container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == config_map_name, c.role
            else:
                assert source["secretRef"]["name"] == secret_name, c.role


def test_no_setting_is_both_in_the_config_map_and_the_secret() -> None:
    in_config_map, in_secret = _k8s_config_keys()
    assert not in_config_map & in_secret


def _variables_set_by_each_file() -> dict[str, set[str]]:
    in_config_map, in_secret = _k8s_config_keys()
    return {
        "docker-compose.yml": {
            name for service in our_services().values() for name in service_environment(service)
        },
        ".env.example": {line.name for line in env_example_lines()},
        "deploy/k8s ConfigMap": in_config_map,
        "deploy/k8s Secret": in_secret,
        "deploy/k8s containers": {
            variable["name"] for c in k8s_containers() for variable in c.container.get("env", [])
        },
    }


@pytest.mark.parametrize("source", sorted(_variables_set_by_each_file()))
def test_every_variable_a_deployment_file_sets_is_a_real_setting(source: str) -> None:
    unknown = _variables_set_by_each_file()[source] - setting_names()
    assert not unknown, f"{source} sets variables distributor never reads: {sorted(unknown)}"


def test_every_setting_is_in_env_example_with_a_comment_above_it() -> None:
    lines = {line.name: line for line in env_example_lines()}
    assert sorted(setting_names() - set(lines)) == []
    uncommented = [line.name for line in lines.values() if not line.comment.startswith("#")]
    assert uncommented == []
    assert len(lines) == len(env_example_lines()), "a setting is listed twice"


def test_env_example_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE)
    sandbox = SandboxSettings(_env_file=ENV_EXAMPLE)
    assert settings.centrapay_base_url == "http://sandbox:8100"
    assert settings.centrapay_api_key is not None
    key = settings.centrapay_api_key.get_secret_value()
    assert f"{key}:{settings.centrapay_account_id}" in sandbox.api_keys


def test_no_setting_is_baked_into_the_image() -> None:
    assert not dockerfile_variables() & setting_names()


def _runtime_requirements() -> dict[str, str]:
    """Every package distributor needs at run time, transitively, with its installed version."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(Requirement(r), frozenset({""})) for r in metadata.requires("distributor") or []]
    while pending:
        requirement, extras_of_parent = pending.pop()
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": e}) for e in extras_of_parent):
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset({"", *requirement.extras})
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        found[name] = metadata.version(name)
        pending += [(Requirement(sub), extras) for sub in metadata.requires(name) or []]
    return found


def test_the_image_installs_the_versions_the_tests_ran_with() -> None:
    """Every package distributor needs at run time is pinned, at the version installed here."""
    pinned = {name: pin.version for name, pin in lock_pins().items()}
    assert "distributor" not in pinned
    needed = _runtime_requirements()
    assert {
        name: (v, pinned.get(name)) for name, v in needed.items() if pinned.get(name) != v
    } == {}


def test_the_tests_run_with_exactly_the_versions_of_the_lock() -> None:
    """What scripts/test installed is what requirements.lock pins, whatever PyPI serves today."""
    installed: dict[str, str | None] = {}
    for pin in lock_pins().values():
        if pin.applies_here():
            try:
                installed[pin.name] = metadata.version(pin.name)
            except metadata.PackageNotFoundError:
                installed[pin.name] = None
    wanted = {pin.name: pin.version for pin in lock_pins().values() if pin.applies_here()}
    assert installed == wanted, "the virtualenv is not requirements.lock: run scripts/test"


def _declared_requirements() -> dict[str, list[Requirement]]:
    project = pyproject()
    return {
        "dependencies": [Requirement(r) for r in project["project"]["dependencies"]],
        **{
            f"optional-dependencies {extra}": [Requirement(r) for r in requirements]
            for extra, requirements in project["project"]["optional-dependencies"].items()
        },
        "build-system": [Requirement(r) for r in project["build-system"]["requires"]],
    }


@pytest.mark.parametrize("section", sorted(_declared_requirements()))
def test_the_lock_pins_every_requirement_of_pyproject_within_its_range(section: str) -> None:
    pins = lock_pins()
    outside = {}
    for requirement in _declared_requirements()[section]:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin.version, prereleases=True):
            outside[str(requirement)] = pin and pin.version
    assert outside == {}, "pyproject.toml changed without scripts/lock"


def _pip_installs() -> list[str]:
    return [
        command
        for keyword, arguments in dockerfile_instructions()
        if keyword == "RUN"
        for command in arguments.split("&&")
        if "pip install" in command
    ]


def test_the_image_installs_only_the_runtime_part_of_the_lock_held_to_its_pins() -> None:
    copied = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "COPY")
    assert "requirements.lock" in copied.split()
    installs = _pip_installs()
    assert len(installs) == 2, installs
    for command in installs:
        assert "-c requirements.lock" in command, f"not held to the lock: {command}"
        assert "-r requirements.lock" not in command, f"the dev tools too: {command}"
        assert "[" not in command, f"an extra: {command}"
    dependencies, project = installs
    assert "['project']['dependencies']" in " ".join(
        args for keyword, args in dockerfile_instructions() if keyword == "RUN"
    )
    assert "-r /tmp/runtime.in" in dependencies
    assert "--no-deps" in project and "--no-build-isolation" in project


def test_the_image_copies_every_package_pyproject_installs() -> None:
    copied = {
        args.split()[0]
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY" and not args.startswith("--")
    }
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages == {"distributor", "centrapay_sandbox"}
    assert packages <= copied, f"pyproject installs {packages}, the image copies {copied}"
