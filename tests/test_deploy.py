"""The deployment in ``deploy/``: its files checked, without a container engine, against the real
command, the real settings and Ray's own parsers; and its topology (PostgreSQL, the API, two job
workers, the standalone dashboard, a two-node Ray cluster) run natively on loopback with a Ray
job submitted through the API."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml
from service_helpers import KEY, TINY, free_port, service_env, stop, wait_for

from autotransfer.record import read_trial
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RAY = Path(sys.executable).with_name("ray")
IMAGE_SERVICES = ("api", "worker", "dashboard", "ray-head", "ray-worker")
SETTING = re.compile(r"\bAUTOTRANSFER_[A-Z0-9_]+\b")
HTTP_PORT = re.compile(r"http://127\.0\.0\.1:(\d+)/")


# --------------------------------------------------------------------------- reading the files


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and name.strip() == name, f".env.example: bad line {line!r}"
            values[name] = value
    return values


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` over a document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        assert op is None or "?" not in op, f"${{{name}}} is required: {arg}"
        return arg if op else ""

    return _VAR.sub(one, value)


def compose(raw: bool = False) -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    return doc if raw else interpolate(doc, env_example())


def kuberay() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / "kuberay-raycluster.yaml").read_text()))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def service_env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --------------------------------------------------------------------------- the real parsers


def autotransfer_params(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``autotransfer ARGS`` with the real command; unknown commands and flags fail."""
    import typer

    from autotransfer.cli import app

    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="autotransfer")
    assert args, "no autotransfer subcommand given"
    command = group.get_command(root, args[0])
    assert command is not None, f"`autotransfer {args[0]}` is not a command"
    try:
        ctx = command.make_context(args[0], list(args[1:]), parent=root, resilient_parsing=False)
    except Exception as exc:
        raise AssertionError(f"`autotransfer {shlex.join(args)}`: {exc}") from exc
    return args[0], ctx.params


def ray_params(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``ray start|stop|health-check ARGS`` with Ray's own command line."""
    from ray.scripts import scripts

    commands = {"start": scripts.start, "stop": scripts.stop, "health-check": scripts.healthcheck}
    assert args and args[0] in commands, f"unexpected `ray {shlex.join(args)}`"
    try:
        ctx = commands[args[0]].make_context(args[0], list(args[1:]), resilient_parsing=False)
    except Exception as exc:
        raise AssertionError(f"`ray {shlex.join(args)}`: {exc}") from exc
    params = ctx.params
    if args[0] == "start" and not params["head"]:
        # the checks `ray start` itself makes before starting a non-head node
        assert params["address"], f"`ray {shlex.join(args)}`: --address or --head is required"
        head_only = [f for f in ("port", "redis_shard_ports", "include_dashboard") if params[f]]
        assert not head_only, f"`ray {shlex.join(args)}`: head-only options {head_only}"
    return args[0], params


def shell_commands(script: str, env: dict[str, str], argv: list[str]) -> list[list[str]]:
    """The simple commands of a small sh script (``&&``, ``;``, ``&``), with ``$VAR`` and ``$@``
    expanded, leading assignments, ``exec``/``nohup`` and redirections dropped."""
    script = script.replace('"$@"', " ".join(shlex.quote(a) for a in argv))
    script = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), f"<unset {m.group(1)}>"), script)
    script = re.sub(r"(?<!\S)\d*>>?&?\s*\S+", " ", script)  # redirections
    lexer = shlex.shlex(script, posix=True, punctuation_chars="&;|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";", "&", "||", "|"):
            commands.append([])
        elif not commands[-1] and (re.match(r"^\w+=", token) or token in ("exec", "nohup")):
            continue
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def parse_command(argv: list[str]) -> tuple[str, str, dict[str, Any]]:
    """(program, subcommand, parsed options) for ``autotransfer ...`` or ``ray ...``."""
    program = Path(argv[0]).name
    if program == "autotransfer":
        return (program, *autotransfer_params(argv[1:]))
    if program == "ray":
        return (program, *ray_params(argv[1:]))
    raise AssertionError(f"unexpected program {argv[0]!r} in {argv}")


def service_commands(name: str, service: dict[str, Any]) -> list[tuple[str, str, dict]]:
    """What a compose service runs: the image's entrypoint ``autotransfer`` unless overridden."""
    entrypoint = service.get("entrypoint") or ["autotransfer"]
    command = service.get("command") or []
    assert isinstance(entrypoint, list) and isinstance(command, list), name
    if entrypoint[:2] == ["/bin/sh", "-c"]:
        script, argv = entrypoint[2], command
        return [parse_command(c) for c in shell_commands(script, service_env_of(service), argv)]
    return [parse_command([*entrypoint, *command])]


def listening_ports(commands: list[tuple[str, str, dict]]) -> set[int]:
    ports = set()
    for program, sub, params in commands:
        if (program, sub) in (("autotransfer", "serve"), ("autotransfer", "dashboard")):
            ports.add(params["port"])
        if (program, sub) == ("ray", "start") and params["head"]:
            ports |= {params["port"], params["dashboard_port"]}
    return ports


# --------------------------------------------------------------------------- compose


def test_every_deploy_yaml_parses_and_the_env_example_is_plain() -> None:
    assert set(compose(raw=True)["services"]) == {"postgres", *IMAGE_SERVICES}
    assert yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())["cluster_name"]
    assert [d["kind"] for d in kuberay()] == ["RayCluster", "Deployment"]
    assert env_example()["AUTOTRANSFER_API_KEYS"]


def test_compose_commands_are_real_commands_with_valid_flags() -> None:
    services = compose()["services"]
    ran = {name: service_commands(name, services[name]) for name in IMAGE_SERVICES}
    assert [(p, s) for p, s, _ in ran["api"]] == [("autotransfer", "serve")]
    assert ran["api"][0][2]["worker"] is False, "the API runs no in-process worker"
    assert [(p, s) for p, s, _ in ran["worker"]] == [("ray", "start"), ("autotransfer", "worker")]
    assert ran["worker"][0][2]["num_cpus"] == 0, "a job worker's Ray node takes no trials"
    assert [(p, s) for p, s, _ in ran["dashboard"]] == [("autotransfer", "dashboard")]
    head, member = ran["ray-head"][0][2], ran["ray-worker"][0][2]
    assert head["head"] and head["block"] and member["block"] and not member["head"]
    assert services["worker"]["deploy"]["replicas"] == 2


def test_compose_settings_are_real_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    required = [n for n, f in Settings.model_fields.items() if f.is_required()]
    for name in ("api", "worker"):
        env = service_env_of(services[name])
        assert {f"AUTOTRANSFER_{n.upper()}" for n in required} <= set(env)
        for key in list(os.environ):
            if key.startswith("AUTOTRANSFER_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()  # raises when a value is invalid or a required one is missing
        assert str(settings.database_url).startswith("postgresql+psycopg://")
        assert not settings.dev and settings.api_keys


def test_every_autotransfer_variable_in_the_files_is_a_setting() -> None:
    fields = {f"AUTOTRANSFER_{name.upper()}" for name in Settings.model_fields}
    files = ["compose.yml", ".env.example", "Dockerfile", "kuberay-raycluster.yaml"]
    texts = {f: (DEPLOY / f).read_text() for f in [*files, "ray-cluster.yaml"]}
    texts["docs/deploy.md"] = (ROOT / "docs" / "deploy.md").read_text()
    for name, text in texts.items():
        unknown = set(SETTING.findall(text)) - fields
        assert not unknown, f"{name} names settings that do not exist: {sorted(unknown)}"
    docs = texts["docs/deploy.md"]
    undocumented = {f for f in fields if f"`{f}`" not in docs}
    assert not undocumented, f"docs/deploy.md's settings table lacks {sorted(undocumented)}"


def test_compose_interpolations_are_defined_in_the_env_example() -> None:
    text = (DEPLOY / "compose.yml").read_text().replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    defined = set(env_example())
    assert used - defined == set(), f"not in .env.example: {sorted(used - defined)}"
    assert defined - used == set(), f"in .env.example but unused: {sorted(defined - used)}"
    assert not re.search(r"\$[A-Za-z_]", text), "a bare $VAR; write ${VAR} or $$VAR"


def test_compose_ports_healthchecks_and_addresses_agree() -> None:
    services = compose()["services"]
    for name in IMAGE_SERVICES:
        service = services[name]
        ports = listening_ports(service_commands(name, service))
        for spec in service.get("ports", []):
            container = int(str(spec).rsplit(":", 1)[1])
            assert container in ports, f"{name} publishes {container}, listens on {ports}"
        check = shlex.join(service["healthcheck"]["test"])
        for port in HTTP_PORT.findall(check):
            assert int(port) in ports, f"{name}'s healthcheck asks port {port}, not {ports}"
    head = service_commands("ray-head", services["ray-head"])[0][2]
    gcs = f"ray-head:{head['port']}"
    assert services["worker"]["environment"]["RAY_ADDRESS"] == gcs
    assert service_commands("ray-worker", services["ray-worker"])[0][2]["address"] == gcs
    for name in ("worker", "ray-head", "ray-worker"):
        test = services[name]["healthcheck"]["test"]
        assert test[1:3] == ["ray", "health-check"] and test[-1] == gcs, name
        assert services[name]["environment"]["RAY_AUTH_TOKEN"] == env_example()["RAY_AUTH_TOKEN"]


def test_compose_storage_volumes_and_start_order() -> None:
    doc = compose()
    services, env = doc["services"], env_example()
    url = services["api"]["environment"]["AUTOTRANSFER_DATABASE_URL"]
    assert services["worker"]["environment"]["AUTOTRANSFER_DATABASE_URL"] == url
    dashboard = service_commands("dashboard", services["dashboard"])[0][2]
    assert dashboard["storage"] == url, "the dashboard reads another storage than the workers"
    pg = services["postgres"]["environment"]
    user, db = pg["POSTGRES_USER"], pg["POSTGRES_DB"]
    assert url == f"postgresql+psycopg://{user}:{env['POSTGRES_PASSWORD']}@postgres:5432/{db}"
    assert "pg_isready" in shlex.join(services["postgres"]["healthcheck"]["test"])

    named = set(doc["volumes"])
    mounted: dict[str, set[str]] = {}
    for name, service in services.items():
        for spec in service.get("volumes", []):
            source, target = spec.split(":")[:2]
            if not source.startswith((".", "/", "~")):
                assert source in named, f"{name} mounts undeclared volume {source!r}"
                mounted.setdefault(source, set()).add(target)
    assert set(mounted) == named, f"declared but unused: {named - set(mounted)}"
    assert mounted["pgdata"] == {"/var/lib/postgresql/data"}
    workdir = [arg for word, arg in dockerfile() if word == "WORKDIR"][-1]
    assert mounted["ray-results"] == {f"{workdir}/ray_results"}, "Tune writes under the cwd"

    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}: {cond}"
            assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has none"
    order = {
        "api": {"postgres"},
        "worker": {"postgres", "api", "ray-head"},
        "dashboard": {"postgres", "api"},
        "ray-worker": {"ray-head"},
    }
    for name, deps in order.items():
        assert set(services[name]["depends_on"]) == deps, name


# --------------------------------------------------------------------------- the image


def test_dockerfile_user_healthcheck_command_and_versions() -> None:
    import ray
    import torch
    import torchvision

    steps = dockerfile()
    args = dict(arg.split("=", 1) for word, arg in steps if word == "ARG" and "=" in arg)
    users = [arg for word, arg in steps if word == "USER"]
    assert users == ["${APP_UID}:${APP_UID}"], "USER must be the user useradd creates"
    assert any(word == "RUN" and "useradd --uid ${APP_UID}" in arg for word, arg in steps)
    uid = args["APP_UID"]
    assert uid.isdigit() and int(uid) > 0, f"APP_UID={uid}: not a non-root numeric id"
    for group in [kuberay()[0]["spec"]["headGroupSpec"], *kuberay()[0]["spec"]["workerGroupSpecs"]]:
        assert group["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)

    health = [arg for word, arg in steps if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]
    entry = yaml.safe_load([arg for word, arg in steps if word == "ENTRYPOINT"][-1])
    cmd = yaml.safe_load([arg for word, arg in steps if word == "CMD"][-1])
    assert entry == ["autotransfer"]
    ports = listening_ports([parse_command([*entry, *cmd])])
    assert {int(p) for p in HTTP_PORT.findall(health[0])} == ports
    assert [arg for word, arg in steps if word == "EXPOSE"] == [str(p) for p in ports]

    stages = {arg.split(" AS ")[1] for word, arg in steps if word == "FROM" and " AS " in arg}
    assert {"base-cpu", "base-cuda"} <= stages and args["FLAVOR"] == "cpu"
    assert ("FROM", "base-${FLAVOR}") in steps
    assert args["TORCH_VERSION"] == torch.__version__.split("+")[0]
    assert args["TORCHVISION_VERSION"] == torchvision.__version__.split("+")[0]
    assert args["RAY_VERSION"] == ray.__version__
    assert kuberay()[0]["spec"]["rayVersion"] == ray.__version__


def _ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore: the last matching rule wins; a rule matching a parent matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_copies_and_nothing_else() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for word, arg in dockerfile():
        if word == "COPY" and not arg.startswith("--from"):
            sources += arg.split()[:-1]
    assert sources
    tracked = subprocess.run(
        ["git", "ls-files", *sources], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(f.endswith(".py") for f in tracked) and "pyproject.toml" in tracked
    for path in tracked:
        assert not _ignored(path, rules), f".dockerignore drops {path}, which the image copies"
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_deploy.py",
        "deploy/.env",
        "autotransfer.db",
        "autotransfer/__pycache__/cli.cpython-311.pyc",
    ):
        assert _ignored(path, rules), f"{path} would be sent to the build"


# --------------------------------------------------------------------------- Ray clusters


def test_ray_cluster_launcher_config_is_valid_for_ray() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert "--entrypoint=/usr/bin/env" in config["docker"]["run_options"]
    env = {"RAY_HEAD_IP": "10.0.0.10"}
    head = [
        parse_command(c)
        for s in config["head_start_ray_commands"]
        for c in shell_commands(s, env, [])
    ]
    worker = [
        parse_command(c)
        for s in config["worker_start_ray_commands"]
        for c in shell_commands(s, env, [])
    ]
    assert [(p, s) for p, s, _ in head] == [
        ("ray", "stop"),
        ("ray", "start"),
        ("autotransfer", "worker"),
    ]
    assert head[1][2]["head"] and head[1][2]["port"] == 6379
    assert worker[1][2]["address"] == f"10.0.0.10:{head[1][2]['port']}"


def test_kuberay_manifest_runs_the_image_in_head_and_worker_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, deployment = kuberay()
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    spec = cluster["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert len(groups) >= 2
    image = groups[0]["template"]["spec"]["containers"][0]["image"]
    for group in groups:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["image"] == image
        flags = [f"--{k}={v}" for k, v in group["rayStartParams"].items()]
        flags = [f.removesuffix("=true") for f in flags]  # KubeRay passes "true" as a bare flag
        ray_params(["start", *flags, "--head" if group is groups[0] else "--address=h:6379"])

    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == image
    env = {e["name"]: e.get("value", f"<secret {e['name']}>") for e in container["env"]}
    commands = [parse_command(c) for c in shell_commands(container["args"][0], env, [])]
    assert [(p, s) for p, s, _ in commands] == [("ray", "start"), ("autotransfer", "worker")]
    head_service = f"{cluster['metadata']['name']}-head-svc:6379"  # KubeRay's naming
    assert commands[0][2]["address"] == env["RAY_ADDRESS"] == head_service
    for key in list(os.environ):
        if key.startswith("AUTOTRANSFER_"):
            monkeypatch.delenv(key)
    # a secret stands for a key of 32 characters, or for the URL the secret holds
    secret = {"AUTOTRANSFER_DATABASE_URL": "postgresql+psycopg://autotransfer:pw@db/autotransfer"}
    for name, value in env.items():
        placeholder = secret.get(name, "k" * 32)
        monkeypatch.setenv(name, placeholder if value.startswith("<secret") else value)
    Settings()


def test_deploy_docs_cover_scaling_backup_and_the_readme_points_there() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for needle in (
        "--scale worker=",
        "pg_dump",
        "pg_restore",
        "deploy/compose.yml",
        "kuberay-raycluster.yaml",
        "ray-cluster.yaml",
        "FLAVOR=cuda",
    ):
        assert needle in docs, f"docs/deploy.md does not mention {needle}"
    readme = (ROOT / "README.md").read_text()
    assert "## Deploy" in readme and "docs/deploy.md" in readme


# --------------------------------------------------------------------------- the topology


def _kill_group(pgid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _kill_mentioning(marker: str) -> None:
    """Kill what is left of our Ray nodes: processes whose command line names our temp dir."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@contextmanager
def ray_node(args: list[str], env: dict[str, str], temp_dir: Path, log: Path) -> Iterator[None]:
    """``ray start`` (which returns once the node is up) in its own process group, killed after."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(RAY), "start", *args, "--temp-dir", str(temp_dir), "--disable-usage-stats"]
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        rc = proc.wait(timeout=120)
        assert rc == 0, f"`{shlex.join(cmd)}` exited with {rc}:\n{log.read_text()[-4000:]}"
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_group(proc.pid)
        _kill_mentioning(str(temp_dir))


def _spawn(cwd: Path, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``autotransfer ARGS`` in ``cwd`` (Tune writes its experiment folder under it)."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "autotransfer", *args],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _compose_worker(
    service: dict[str, Any], env: dict[str, str], cwd: Path, ray_tmp: Path, logs: Path
) -> subprocess.Popen[bytes]:
    """compose.yml's job worker as written (join the Ray cluster, then ``autotransfer worker``),
    with its Ray node kept on loopback, off Ray's fixed default ports and in our temp dir."""
    shell, flag, script, *argv0 = service["entrypoint"]
    local = f"ray start --node-ip-address=127.0.0.1 --dashboard-agent-listen-port={free_port()} "
    assert script.count("ray start ") == 1
    script = script.replace("ray start ", local)
    ray_tmp.mkdir(parents=True)
    env = {**env, "RAY_TMPDIR": str(ray_tmp), "PATH": f"{RAY.parent}:{env['PATH']}"}
    with (logs / f"worker-{ray_tmp.name}.log").open("ab") as handle:
        return subprocess.Popen(
            [shell, flag, script, *argv0, *service["command"]],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(logs: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.iterdir())
    )


def _healthcheck(test: list[str], replace: dict[str, str], env: dict[str, str]) -> None:
    """Run a compose/Dockerfile healthcheck command here, with its host and ports swapped."""
    argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
    programs = {"python": sys.executable, "ray": str(RAY)}
    argv = [programs.get(a, a) if i == 0 else a for i, a in enumerate(argv)]
    for old, new in replace.items():
        argv = [a.replace(old, new) for a in argv]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"healthcheck {argv} failed:\n{done.stdout}\n{done.stderr}"


def _docs_flags(program: str) -> list[str]:
    """The flags docs/deploy.md gives ``pg_dump``/``pg_restore`` after the user and database."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    found = re.search(program + r' -U "\$POSTGRES_USER" -d "\$POSTGRES_DB" ([^\']*)\'', docs)
    assert found, f"docs/deploy.md shows no {program} command"
    return shlex.split(found.group(1))


def _backup_and_restore(url: str, dump: Path, job_id: str) -> None:
    """docs/deploy.md's backup and restore commands: the study and the job come back."""
    import psycopg
    import sqlalchemy as sa

    tools = [shutil.which("pg_dump"), shutil.which("pg_restore")]
    assert all(tools), "pg_dump/pg_restore not found: install PostgreSQL's client tools"
    parsed = sa.engine.make_url(url)
    where = ["-h", str(parsed.host), "-p", str(parsed.port), "-U", str(parsed.username)]
    subprocess.run(
        ["pg_dump", *where, "-d", str(parsed.database), *_docs_flags("pg_dump"), "-f", str(dump)],
        check=True,
        timeout=120,
    )
    restored = f"{parsed.database}_restored"
    admin = {"host": parsed.host, "port": parsed.port, "user": parsed.username}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(
            ["pg_restore", *where, "-d", restored, *_docs_flags("pg_restore"), str(dump)],
            check=True,
            timeout=120,
        )
        copy = parsed.set(database=restored).render_as_string(hide_password=False)
        study = optuna.load_study(study_name="deploy-ray", storage=copy)
        assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 2
        engine = sa.create_engine(copy)
        try:
            with engine.connect() as conn:
                state = conn.execute(
                    sa.text("SELECT state FROM autotransfer_jobs WHERE id = :id"), {"id": job_id}
                ).scalar_one()
        finally:
            engine.dispose()
        assert state == "succeeded"
    finally:
        with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


@pytest.mark.slow
def test_topology_runs_a_ray_job_submitted_through_the_api(
    postgres_url: str, tmp_path: Path
) -> None:
    """compose.yml's topology on loopback: a Ray job through the API succeeds on our cluster."""
    services = compose()["services"]
    steps = dockerfile()
    token = secrets.token_hex(32)
    ray_tmp = Path(tempfile.mkdtemp(prefix="atdeploy-", dir="/tmp"))  # short: socket paths
    gcs = free_port()
    # Ray's fixed default ports (8265, 52365) would collide with other Ray instances here
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
    head = ["--head", "--port", str(gcs), "--include-dashboard", "false", *common]
    head += ["--dashboard-port", str(free_port())]
    member = ["--address", f"127.0.0.1:{gcs}", *common]
    renv = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOTRANSFER_", "RAY_"))}
    # token authentication as in compose.yml, with our own token, not ~/.ray/auth_token's
    renv.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PYTHONUNBUFFERED="1")
    env = {
        **service_env(postgres_url, api_keys=KEY, poll_s=0.5, heartbeat_s=2, warm_catalog="false"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_ADDRESS": f"127.0.0.1:{gcs}",  # as compose.yml sets it for the job workers
    }
    auth = {"Authorization": f"Bearer {KEY}"}
    logs, work = tmp_path / "logs", tmp_path / "work"
    logs.mkdir()
    work.mkdir()
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            agent = ["--dashboard-agent-listen-port"]
            stack.enter_context(
                ray_node([*head, *agent, str(free_port())], renv, ray_tmp / "h", logs / "head.log")
            )
            stack.enter_context(
                ray_node([*member, *agent, str(free_port())], renv, ray_tmp / "n", logs / "n.log")
            )
            _healthcheck(
                services["ray-head"]["healthcheck"]["test"],
                {"ray-head:6379": env["RAY_ADDRESS"]},
                renv,
            )
            # in compose.yml's order: the API, once healthy the job workers and the dashboard
            api_port, dash_port = free_port(), free_port()
            api = _spawn(
                work,
                ["serve", "--host", "127.0.0.1", "--port", str(api_port), "--no-worker"],
                env,
                logs / "api.log",
            )
            stack.callback(stop, api)
            base = f"http://127.0.0.1:{api_port}"

            def ready() -> bool:
                assert api.poll() is None, (logs / "api.log").read_text()
                try:
                    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready, 90, "the API to answer /readyz", every=0.5)
            (image_check,) = [a for w, a in steps if w == "HEALTHCHECK"]
            image_test = yaml.safe_load(image_check.split(" CMD ", 1)[1])
            _healthcheck(image_test, {"127.0.0.1:8000": f"127.0.0.1:{api_port}"}, env)
            _healthcheck(
                services["api"]["healthcheck"]["test"],
                {"127.0.0.1:8000": f"127.0.0.1:{api_port}"},
                env,
            )
            workers = []
            for i in range(2):
                proc = _compose_worker(services["worker"], env, work, ray_tmp / f"w{i}", logs)
                stack.callback(_kill_group, proc.pid)  # its Ray node, after the worker
                stack.callback(stop, proc, 30)
                workers.append(proc)
                log = logs / f"worker-w{i}.log"

                def joined(proc: subprocess.Popen[bytes] = proc, log: Path = log) -> bool:
                    assert proc.poll() is None, f"the job worker exited:\n{log.read_text()}"
                    return "Ray runtime started" in log.read_text(errors="replace")

                # one node at a time: `ray start` gives up after 30 s, and 2 cores are few
                wait_for(joined, 120, f"job worker {i} to join the Ray cluster", every=0.5)
            dash = _spawn(
                work,
                ["dashboard", "--storage", postgres_url, "--port", str(dash_port)],
                env,
                logs / "dashboard.log",
            )
            stack.callback(stop, dash)

            body = {**TINY, "backend": "ray", "study_name": "deploy-ray"}
            r = httpx.post(f"{base}/v1/studies", json=body, headers=auth, timeout=30)
            assert r.status_code == 202, r.text
            location = base + r.json()["location"]

            def ended() -> dict[str, Any] | None:
                for proc in workers:
                    assert proc.poll() is None, _tail(logs)
                job = httpx.get(location, headers=auth, timeout=10).json()
                return job if job["state"] in ("succeeded", "failed", "cancelled") else None

            job = wait_for(ended, 480, "the Ray job to end", every=2)
            assert job["state"] == "succeeded", f"{job}\n{_tail(logs)}"
            assert job["progress"]["finished"] == 2, job["progress"]
            trials = httpx.get(f"{location}/trials", headers=auth, timeout=10).json()
            assert trials["count"] == 2, trials

            # the API shows a few trial attributes; the shared storage holds all of them
            study = optuna.load_study(study_name="deploy-ray", storage=postgres_url)
            nodes = {read_trial(t).ray_node for t in study.trials}
            assert None not in nodes, [t.user_attrs for t in study.trials]
            driven = "".join(p.read_text(errors="replace") for p in logs.glob("worker-*.log"))
            assert "Started a local Ray instance" not in driven, (
                "the job worker started a Ray of its own instead of joining the cluster that "
                "RAY_ADDRESS names (autotransfer.search._ray._init_ray must honour RAY_ADDRESS "
                "when the request has no ray_address)"
            )
            # ... on the nodes with CPUs we started, not on a job worker's node or another Ray
            for node in nodes:
                where = {
                    p.relative_to(ray_tmp).parts[0]
                    for p in ray_tmp.glob("**/session_*/logs/raylet.out")
                    if f"Setting node ID node_id={node}" in p.read_text(errors="replace")
                }
                assert where in ({"h"}, {"n"}), f"a trial ran on node {node}, found in {where}"

            # the standalone dashboard reads the same storage
            _healthcheck(
                services["dashboard"]["healthcheck"]["test"],
                {"127.0.0.1:8080": f"127.0.0.1:{dash_port}"},
                env,
            )
            studies = httpx.get(f"http://127.0.0.1:{dash_port}/api/studies", timeout=10).json()
            assert "deploy-ray" in [s["study_name"] for s in studies["study_summaries"]]
        _backup_and_restore(postgres_url, tmp_path / "backup.dump", job["id"])
    finally:
        _kill_mentioning(str(ray_tmp))
        for path in ray_tmp.glob("**/session_*/logs/*"):  # kept beside the test's other logs
            if path.is_file():
                target = logs / "ray" / path.relative_to(ray_tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(f"topology test: {time.monotonic() - started:.0f} s")
