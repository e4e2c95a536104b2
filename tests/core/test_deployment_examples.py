"""The deployment examples under docs/deployment/ keep matching the code they start.

systemd units, Helm worker values, the env example and the Celery runbook's task table are checked
against imagineer.celery (queues, routes, the app), the settings (time limits, the env names they
read) and the installed Celery and gunicorn command lines (every option they pass exists).
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from imagineer.celery import QUEUES, app, queue_for_task

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deployment"
SYSTEMD = DEPLOY / "systemd"
HELM_VALUES = DEPLOY / "helm" / "values-workers.yaml"
ENV_EXAMPLE = DEPLOY / "imagineer.env.example"
RUNBOOK = DEPLOY / "CELERY.md"
SETTINGS_PY = ROOT / "imagineer" / "settings.py"

INSTALL_DIR = "/opt/imagineer"  # where the units expect the code, its .venv beside it
ENV_FILE = "/etc/imagineer/imagineer.env"
GPU_QUEUES = {"generation", "training"}
PLACEHOLDER = "CHANGE_ME"


# --- Reading the files ----------------------------------------------------------------------------


def unit_files() -> list[Path]:
    return sorted(SYSTEMD.glob("*.service"))


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]}; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: bad section header {line!r}"
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{path.name}:{number}: a setting before any [Section]"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        sections[current].append((key.strip(), value.strip()))
    assert not pending, f"{path.name}: ends in a line continuation"
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: dict, section: str, key: str) -> str | None:
    found = values(unit, section, key)
    return found[-1] if found else None


def exec_argv(command_line: str) -> list[str]:
    """ExecStart's argv as the program sees it: prefixes dropped, %% turned into %."""
    return [word.replace("%%", "%") for word in shlex.split(command_line.lstrip("-@+!:"))]


TIME_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}


def systemd_seconds(span: str) -> float:
    """A systemd time span ("5h 10min", "45", "90s") in seconds."""
    if span.strip() == "infinity":
        return float("inf")
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", span):
        return float(span)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", span)
    assert parts and "".join(n + u for n, u in parts) == re.sub(r"\s+", "", span), f"unparsed time span {span!r}"
    return sum(float(number) * TIME_UNITS[unit] for number, unit in parts)


@cache
def settings_env_names() -> frozenset[str]:
    """Every environment variable imagineer/settings.py reads (env.str("NAME", ...) and friends)."""
    return frozenset(re.findall(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", SETTINGS_PY.read_text()))


def parse_env_file(path: Path) -> list[tuple[str, str, bool]]:
    """(name, value, commented) for every NAME=value line, and every "# NAME=value" example line."""
    entries = []
    for raw in path.read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", raw.strip())
        if match:
            entries.append((match.group(2), match.group(3), bool(match.group(1))))
    return entries


def load_helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


# --- Command lines --------------------------------------------------------------------------------


def click_options(command) -> dict[str, bool]:
    """{option: takes a value} for a click command."""
    import click

    options = {}
    for param in command.params:
        if isinstance(param, click.Option):
            takes_value = not (param.is_flag or param.count)
            for name in param.opts:
                options[name] = takes_value
            for name in param.secondary_opts:
                options[name] = False
    return options


def parse_options(args: list[str], known: dict[str, bool], where: str) -> tuple[dict[str, str], list[str]]:
    """Split args into ({option: value}, positionals), failing on an option the program lacks."""
    options: dict[str, str] = {}
    positionals: list[str] = []
    words = iter(args)
    for word in words:
        if word.startswith("-") and word != "-":
            name, has_inline, inline = word.partition("=")
            if name not in known and not name.startswith("--") and known.get(name[:2]):
                name, has_inline, inline = name[:2], "=", name[2:]  # -Aimagineer
            assert name in known, f"{where}: unknown option {name!r}"
            if known[name]:
                options[name] = inline if has_inline else next(words, None)
                assert options[name] is not None, f"{where}: option {name} needs a value"
            else:
                options[name] = ""
        else:
            positionals.append(word)
    return options, positionals


def option(options: dict[str, str], *names: str) -> str | None:
    for name in names:
        if name in options:
            return options[name]
    return None


def parse_celery(argv: list[str], where: str) -> dict:
    """A `celery -A imagineer <worker|beat|inspect|...>` command line, checked against Celery's CLI."""
    from celery.app.utils import find_app
    from celery.bin.celery import celery

    assert Path(argv[0]).name == "celery", f"{where}: runs {argv[0]!r}, not celery"
    global_known = click_options(celery)
    subcommand_at, i = None, 1
    while i < len(argv) and subcommand_at is None:
        word = argv[i]
        if word.startswith("-"):
            i += 2 if global_known.get(word) else 1  # skip an option's separate value
        else:
            subcommand_at = i
    assert subcommand_at and argv[subcommand_at] in celery.commands, f"{where}: no celery subcommand in {argv!r}"
    global_options, stray = parse_options(argv[1:subcommand_at], global_known, where)
    assert not stray, f"{where}: unexpected words before the subcommand: {stray!r}"
    name = argv[subcommand_at]
    options, positionals = parse_options(argv[subcommand_at + 1 :], click_options(celery.commands[name]), where)
    app_name = option(global_options, "-A", "--app")
    assert app_name == "imagineer", f"{where}: -A {app_name!r}, expected -A imagineer"
    assert find_app(app_name) is app, f"{where}: -A {app_name} does not find imagineer.celery.app"
    queues = option(options, "-Q", "--queues")
    return {
        "subcommand": name,
        "options": options,
        "positionals": positionals,
        "queues": [q.strip() for q in queues.split(",")] if queues else [],
    }


def gunicorn_options() -> dict[str, bool]:
    from gunicorn.config import KNOWN_SETTINGS

    flag_actions = {"store_true", "store_false", "store_const"}
    return {name: setting.action not in flag_actions for setting in KNOWN_SETTINGS for name in setting.cli or []}


def hard_limit(queues) -> int:
    return max(settings.CELERY_QUEUE_TIME_LIMITS[q][1] for q in queues)


def classify_units() -> dict[str, list[tuple[Path, dict, list[str]]]]:
    kinds: dict[str, list] = {"web": [], "worker": [], "beat": []}
    for path in unit_files():
        unit = parse_unit(path)
        starts = values(unit, "Service", "ExecStart")
        assert len(starts) == 1, f"{path.name}: expected one ExecStart, found {len(starts)}"
        argv = exec_argv(starts[0])
        program = Path(argv[0]).name
        if program == "gunicorn":
            kinds["web"].append((path, unit, argv))
        elif program == "celery" and "worker" in argv:
            kinds["worker"].append((path, unit, argv))
        elif program == "celery" and "beat" in argv:
            kinds["beat"].append((path, unit, argv))
        else:
            pytest.fail(f"{path.name}: ExecStart {argv[0]!r} is neither gunicorn nor a celery worker/beat")
    return kinds


# --- systemd units --------------------------------------------------------------------------------


def test_there_are_web_worker_and_beat_units():
    kinds = classify_units()
    assert kinds["web"] and kinds["worker"], {k: [p.name for p, *_ in v] for k, v in kinds.items()}
    # Exactly one beat, and not a template: `systemctl start imagineer-beat@a imagineer-beat@b` would run two.
    assert len(kinds["beat"]) == 1 and "@" not in kinds["beat"][0][0].name


@pytest.mark.parametrize("path", unit_files(), ids=lambda p: p.name)
def test_unit_runs_the_installed_code_as_a_dedicated_user(path):
    unit = parse_unit(path)
    assert {"Unit", "Service", "Install"} <= set(unit), f"{path.name}: sections {sorted(unit)}"
    assert value(unit, "Unit", "Description")
    assert value(unit, "Install", "WantedBy") == "multi-user.target"
    user = value(unit, "Service", "User")
    assert user and user not in ("root", "0"), f"{path.name}: User={user}"
    assert value(unit, "Service", "EnvironmentFile") == ENV_FILE
    assert value(unit, "Service", "WorkingDirectory") == INSTALL_DIR
    assert value(unit, "Service", "Restart") in ("on-failure", "always", "on-abnormal", "on-abort")
    assert value(unit, "Service", "KillMode") == "mixed", f"{path.name}: SIGTERM must reach the main process only"
    argv = exec_argv(value(unit, "Service", "ExecStart"))
    program = Path(argv[0])
    assert program.parent == Path(INSTALL_DIR) / ".venv" / "bin", f"{path.name}: {program} is not in the venv"
    assert (Path(sys.executable).parent / program.name).exists(), f"{program.name} is not installed by requirements"


@pytest.mark.parametrize("path", unit_files(), ids=lambda p: p.name)
def test_unit_does_not_let_systemd_eat_celerys_placeholders(path):
    # systemd expands %h (home directory), %n, %i ... itself; Celery's %h must be written %%h.
    for line in values(parse_unit(path), "Service", "ExecStart"):
        for specifier in re.findall(r"(?<!%)%([a-zA-Z])", line.replace("%%", "")):
            assert specifier in "iIH", f"{path.name}: %{specifier} is expanded by systemd; write %%{specifier}"


def test_worker_units_consume_real_queues_with_a_safe_pool():
    for path, unit, argv in classify_units()["worker"]:
        command = parse_celery(argv, path.name)
        queues = command["queues"]
        assert queues, f"{path.name}: a worker without --queues consumes only the default queue"
        assert set(queues) <= set(QUEUES), f"{path.name}: unknown queues {set(queues) - set(QUEUES)}"
        assert len(queues) == len(set(queues))
        options = command["options"]
        # prefork: the only local pool that enforces time limits and the max-*-per-child guards.
        assert option(options, "-P", "--pool") == "prefork", f"{path.name}: use --pool prefork"
        assert option(options, "--max-memory-per-child") and option(options, "--max-tasks-per-child")
        assert option(options, "-n", "--hostname"), f"{path.name}: give the worker a node name"
        # Warm shutdown waits for the running task, up to the longest hard time limit of its queues.
        stop = systemd_seconds(value(unit, "Service", "TimeoutStopSec") or "90")
        assert stop > hard_limit(queues), f"{path.name}: TimeoutStopSec {stop}s <= hard limit {hard_limit(queues)}s"
        if set(queues) & GPU_QUEUES:
            assert set(queues) <= GPU_QUEUES, f"{path.name}: keep CPU queues off GPU workers"
            assert option(options, "-c", "--concurrency") == "1", f"{path.name}: one process per GPU"
            assert "@" in path.name, f"{path.name}: one unit instance per GPU (template)"
            assert "CUDA_VISIBLE_DEVICES=%i" in values(unit, "Service", "Environment")
            assert "%i" in option(options, "-n", "--hostname"), "node names must differ per GPU"


def test_every_queue_is_consumed_by_some_worker_unit():
    consumed = set()
    for path, _unit, argv in classify_units()["worker"]:
        consumed |= set(parse_celery(argv, path.name)["queues"])
    assert consumed == set(QUEUES), f"no unit consumes {set(QUEUES) - consumed}"


def test_worker_node_names_are_distinct():
    names = [
        option(parse_celery(argv, path.name)["options"], "-n", "--hostname")
        for path, _unit, argv in classify_units()["worker"]
    ]
    assert len(names) == len(set(names)), names


def test_beat_unit_uses_the_database_scheduler():
    [(path, _unit, argv)] = classify_units()["beat"]
    command = parse_celery(argv, path.name)
    assert command["subcommand"] == "beat"
    scheduler = option(command["options"], "-S", "--scheduler")
    assert scheduler == app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    module, _, attribute = scheduler.partition(":")
    assert getattr(importlib.import_module(module), attribute)


def test_web_unit_serves_the_wsgi_application():
    [(path, unit, argv)] = classify_units()["web"]
    options, positionals = parse_options(argv[1:], gunicorn_options(), path.name)
    assert len(positionals) == 1, f"{path.name}: expected one APP_MODULE, got {positionals}"
    module_name, _, attribute = positionals[0].partition(":")
    assert f"{module_name}.{attribute or 'application'}" == settings.WSGI_APPLICATION
    assert callable(getattr(importlib.import_module(module_name), attribute or "application"))
    graceful = float(option(options, "--graceful-timeout") or 30)
    assert systemd_seconds(value(unit, "Service", "TimeoutStopSec") or "90") > graceful
    assert value(unit, "Service", "Type") == "notify"  # gunicorn's arbiter sends READY=1


def _systemd_analyze_works(tmp: Path) -> str:
    """'' when `systemd-analyze verify` works here, else why not."""
    if not shutil.which("systemd-analyze"):
        return "systemd-analyze is not installed"
    probe = tmp / "imagineer-probe.service"
    probe.write_text(f"[Unit]\nDescription=probe\n[Service]\nExecStart={shutil.which('true') or '/bin/true'}\n")
    try:
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(probe)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemd-analyze does not run here: {exc}"
    probe.unlink()
    if result.returncode != 0 or result.stdout.strip() or result.stderr.strip():
        return f"systemd-analyze verify fails on a trivial unit here: {(result.stderr or result.stdout).strip()[:300]}"
    return ""


def test_units_pass_systemd_analyze_verify(tmp_path):
    reason = _systemd_analyze_works(tmp_path)
    if reason:
        pytest.skip(reason)
    # verify checks that executables exist: point the install paths at this checkout and venv.
    copies = []
    for path in unit_files():
        text = path.read_text()
        text = text.replace(f"{INSTALL_DIR}/.venv/bin/", f"{Path(sys.executable).parent}/")
        text = text.replace(INSTALL_DIR, str(ROOT))
        copy = tmp_path / path.name
        copy.write_text(text)
        copies.append(copy)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, copies)], capture_output=True, text=True, timeout=120
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    # Unknown keys and unparsable values are only warnings (exit 0): fail on them too.
    ours = [line for line in output.splitlines() if str(tmp_path) in line or "imagineer-" in line]
    assert not ours, "\n".join(ours)


# --- Helm values ----------------------------------------------------------------------------------


def test_helm_values_load_and_their_queues_cover_every_queue():
    data = load_helm_values()
    workers = data["workers"]
    assert workers, "no worker groups"
    consumed: list[str] = []
    for group, spec in workers.items():
        assert set(spec["queues"]) <= set(QUEUES), f"{group}: unknown queues {set(spec['queues']) - set(QUEUES)}"
        consumed += spec["queues"]
    assert set(consumed) == set(QUEUES), f"no worker group consumes {set(QUEUES) - set(consumed)}"
    assert len(consumed) == len(set(consumed)), "a queue is listed in two groups"
    assert data["image"]["repository"] and data["image"]["tag"]
    secret_refs = [e["secretRef"]["name"] for e in data["envFrom"] if "secretRef" in e]
    assert secret_refs, "workers must get their environment from a Secret"


@pytest.mark.parametrize("group", sorted(load_helm_values()["workers"]))
def test_helm_worker_group_runs_a_real_worker_command(group):
    spec = load_helm_values()["workers"][group]
    where = f"helm workers.{group}"
    command = parse_celery([*spec["command"], *map(str, spec["args"])], where)
    assert command["subcommand"] == "worker"
    assert command["queues"] == spec["queues"], f"{where}: --queues differs from `queues`"
    options = command["options"]
    assert option(options, "-P", "--pool") == "prefork"
    assert isinstance(spec["replicas"], int) and spec["replicas"] >= 0
    assert spec["terminationGracePeriodSeconds"] > hard_limit(spec["queues"]), f"{where}: grace below the hard limit"
    limits = spec["resources"]["limits"]
    assert "memory" in limits
    if set(spec["queues"]) & GPU_QUEUES:
        assert set(spec["queues"]) <= GPU_QUEUES
        assert option(options, "-c", "--concurrency") == "1"
        assert int(limits["nvidia.com/gpu"]) >= 1
        assert spec["strategy"]["rollingUpdate"]["maxSurge"] == 0, f"{where}: no spare GPU to surge onto"
    else:
        assert "nvidia.com/gpu" not in limits

    # Liveness: `celery inspect ping` for this pod's own node name.
    probe = spec["livenessProbe"]["exec"]["command"]
    assert probe[:2] == ["sh", "-c"], f"{where}: the probe needs a shell to expand $HOSTNAME"
    ping = parse_celery(shlex.split(probe[2]), f"{where} livenessProbe")
    assert ping["subcommand"] == "inspect" and ping["positionals"] == ["ping"]
    node = option(options, "-n", "--hostname")
    assert node and node.endswith("@%h"), f"{where}: node name {node!r} should end in @%h (the pod name)"
    assert option(ping["options"], "-d", "--destination") == node.replace("%h", "$HOSTNAME")
    assert spec["livenessProbe"]["timeoutSeconds"] > float(option(ping["options"], "-t", "--timeout") or 1)


def test_helm_runs_exactly_one_beat():
    beat = load_helm_values()["beat"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate", "a rolling update would briefly run two beats"
    command = parse_celery([*beat["command"], *map(str, beat["args"])], "helm beat")
    assert command["subcommand"] == "beat"
    assert option(command["options"], "-S", "--scheduler") == app.conf.beat_scheduler


# --- Env example ----------------------------------------------------------------------------------


def test_env_example_names_only_variables_the_settings_read():
    entries = parse_env_file(ENV_EXAMPLE)
    names = [name for name, _value, _commented in entries]
    unknown = sorted(set(names) - settings_env_names())
    assert not unknown, f"imagineer/settings.py reads none of {unknown}"
    assert len(names) == len(set(names)), "a variable appears twice"


def test_env_example_sets_what_production_requires():
    active = {name: val for name, val, commented in parse_env_file(ENV_EXAMPLE) if not commented}
    assert active["IMAGINEER_ENV"] == "production"
    for name in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS", "MEDIA_ROOT"):
        assert active.get(name), f"{name} must be set"
    assert active["DATABASE_URL"].startswith("postgres"), "production refuses SQLite (imagineer.E001)"
    assert not active["CELERY_BROKER_URL"].startswith("filesystem"), "production refuses it (imagineer.E005)"
    assert active["CELERY_BROKER_URL"] != active.get("REDIS_URL"), "broker and cache share a Redis database"


def test_env_example_holds_no_secret_and_no_quotes():
    for name, val, _commented in parse_env_file(ENV_EXAMPLE):
        # systemd EnvironmentFile strips quotes, kubectl --from-env-file keeps them: use none.
        assert not re.search(r"[\"'`]", val), f"{name}: no quotes in values"
        if re.search(r"(SECRET|PASSWORD|TOKEN|API_KEY|WEBHOOK)", name):
            assert val == "" or PLACEHOLDER in val, f"{name}: use a {PLACEHOLDER} placeholder, never a real value"
        if "://" in val:
            password = urlsplit(val).password
            assert password is None or PLACEHOLDER in password, f"{name}: the password in the URL must be a placeholder"


def test_units_and_helm_paths_agree_with_the_env_example():
    active = {name: val for name, val, commented in parse_env_file(ENV_EXAMPLE) if not commented}
    mounts = {m["mountPath"] for m in load_helm_values()["volumeMounts"]}
    assert active["MEDIA_ROOT"] in mounts and active["IMAGINEER_DATA_DIR"] in mounts
    assert active["STATIC_ROOT"].startswith(INSTALL_DIR + "/")


# --- Runbook --------------------------------------------------------------------------------------


def runbook_task_table() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_][\w.]*\.[\w]+)` \| `(\w+)` \|", RUNBOOK.read_text(), flags=re.MULTILINE)
    return dict(rows)


def test_runbook_task_table_matches_the_routes_and_the_registered_tasks():
    table = runbook_task_table()
    assert table, "the runbook's task table was not found"
    for task, queue in table.items():
        assert queue_for_task(task) == queue, f"CELERY.md routes {task} to {queue}, the code to {queue_for_task(task)}"
    app.loader.import_default_modules()  # what a worker does at start: autodiscover every tasks.py
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    missing = sorted(ours - set(table))
    assert not missing, f"CELERY.md's task table lacks {missing}"


def test_runbook_names_real_settings_and_every_queue():
    text = RUNBOOK.read_text()
    for queue in QUEUES:
        assert f"| `{queue}` |" in text, f"the runbook's queue table lacks {queue}"
    for name in set(re.findall(r"`((?:IMAGINEER|CELERY)_[A-Z0-9_]*[A-Z0-9])`", text)):
        assert name in settings_env_names() or hasattr(settings, name), f"CELERY.md names {name}, which nothing reads"


def settings_numeric_defaults() -> dict[str, float]:
    """{NAME: default} for every env.int/env.float("NAME", default=<number>) in imagineer/settings.py."""
    found = re.findall(
        r"\benv\.(?:int|float)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"'],\s*default=(\d+(?:\.\d+)?)\s*\)", SETTINGS_PY.read_text()
    )
    return {name: float(default) for name, default in found}


@pytest.mark.parametrize("doc", [RUNBOOK, ROOT / "docs" / "CONFIG.md"], ids=lambda p: p.name)
def test_documented_setting_defaults_are_the_settings_defaults(doc):
    rows = re.findall(
        r"^\| `((?:IMAGINEER|CELERY)_[A-Z0-9_]+)` \| (\d+(?:\.\d+)?) \|", doc.read_text(), flags=re.MULTILINE
    )
    defaults = settings_numeric_defaults()
    assert rows, f"{doc.name}: no settings table with defaults"
    for name, documented in rows:
        assert name in defaults, f"{doc.name} gives a default for {name}, which settings.py reads without a number"
        assert float(documented) == defaults[name], (
            f"{doc.name}: {name} defaults to {defaults[name]:g}, not {documented}"
        )


def test_deployment_md_links_the_runbook():
    assert "deployment/CELERY.md" in (ROOT / "docs" / "DEPLOYMENT.md").read_text()
