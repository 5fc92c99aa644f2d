"""Runs the Procfile's processes under supervisord: each restarted when it dies, each with its own log.

`make run` ends with `python -m bot.supervise`. It writes `var/run/supervisord.conf` from the
Procfile (`var/Procfile.replicas` for replicas), adds the watchdog (`bot.watchdog`, which restarts a
process that is alive but not serving), and runs supervisord in the foreground, so Ctrl-C stops
everything. While it runs, `.venv/bin/supervisorctl -c var/run/supervisord.conf status` shows each
process and `... restart actions` restarts one; logs are in `var/log/<process>.log`.

supervisord was chosen over circus and honcho: it restarts a process that exits (with growing delays
while a start keeps failing), keeps a log per process with rotation, has a control command and an
XML-RPC interface the watchdog uses, and is a maintained package with no dependencies.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.settings import PROJECT_ROOT

# Rasa loads its model for ~30 s before it listens; the others are up within seconds. A start that
# dies sooner than this counts as failed, and supervisord retries it after a growing delay.
START_SECONDS = {"rasa": 10, "actions": 5, "gateway": 5}
START_RETRIES = 8
STOP_WAIT_SECONDS = 20
LOG_BYTES = "20MB"
LOG_BACKUPS = 5


@dataclass(frozen=True)
class Program:
    name: str
    command: str

    @property
    def kind(self) -> str:
        """rasa, actions or gateway (replicas are numbered: rasa1, actions2 ...)."""
        return self.name.rstrip("0123456789")


def read_procfile(path: Path) -> list[Program]:
    """The Procfile's `name: command` lines, in order."""
    programs = []
    for line in path.read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip() and not line.lstrip().startswith("#"):
            programs.append(Program(name.strip(), command.strip()))
    return programs


def _escape(value: str) -> str:
    """supervisord expands %(...)s in its values; a literal % is written %%."""
    return value.replace("%", "%%")


def config(programs: Sequence[Program], run_dir: Path, log_dir: Path, python: str = sys.executable) -> str:
    """supervisord's configuration: the Procfile's programs, the watchdog, a control socket."""
    socket = run_dir / "supervisor.sock"
    sections = [
        f"""[unix_http_server]
file={socket}
chmod=0700

[supervisord]
nodaemon=true
logfile={log_dir / "supervisord.log"}
logfile_maxbytes={LOG_BYTES}
logfile_backups={LOG_BACKUPS}
pidfile={run_dir / "supervisord.pid"}
childlogdir={log_dir}
directory={PROJECT_ROOT}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}
"""
    ]
    for program in programs:
        command = "/bin/bash -c " + shlex.quote(_leader(program, run_dir))
        log = log_dir / f"{program.name}.log"
        sections.append(_program(program.name, command, START_SECONDS.get(program.kind, 5), log))
    watchdog = f"{shlex.quote(python)} -m bot.watchdog --control unix://{socket}"
    sections.append(_program("watchdog", watchdog, 2, log_dir / "watchdog.log", priority=999))
    return "\n".join(sections)


def _leader(program: Program, run_dir: Path) -> str:
    """The Procfile line, run by bash as honcho ran it ($VARIABLES, `&&`, `exec`), after ending what
    the program's previous run left behind.

    supervisord makes each program the leader of its own process group, and the Procfile's lines
    `exec` into the program, so the group's id is the program's pid. When the main process is
    killed, its children (the action server's workers) live on in that group and keep its port;
    the next start kills the group it recorded, then records its own.
    """
    group_file = shlex.quote(str(run_dir / f"{program.name}.pgid"))
    return (
        f'previous=$(cat {group_file} 2>/dev/null) && [ -n "$previous" ] && kill -KILL -- "-$previous" '
        f"2>/dev/null; echo $$ > {group_file}; {program.command}"
    )


def _program(name: str, command: str, start_seconds: int, log: Path, priority: int = 100) -> str:
    return f"""[program:{name}]
command={_escape(command)}
directory={PROJECT_ROOT}
priority={priority}
autostart=true
autorestart=true
startsecs={start_seconds}
startretries={START_RETRIES}
stopsignal=TERM
stopwaitsecs={STOP_WAIT_SECONDS}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={_escape(str(log))}
stdout_logfile_maxbytes={LOG_BYTES}
stdout_logfile_backups={LOG_BACKUPS}
"""


def write_config(procfile: Path, run_dir: Path, log_dir: Path, only: Sequence[str] = ()) -> Path:
    """Write the configuration for `procfile` (or only the processes named); its path.

    The directories are the owner's alone: the control socket can restart anything.
    """
    programs = read_procfile(procfile)
    unknown = set(only) - {program.name for program in programs}
    if unknown:
        raise SystemExit(f"{procfile} has no process named {', '.join(sorted(unknown))}")
    if only:
        programs = [program for program in programs if program.name in only]
    for directory in (run_dir, log_dir):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    # Groups recorded by an earlier supervisord ended with it; their ids may belong to others now.
    for stale in run_dir.glob("*.pgid"):
        stale.unlink()
    path = run_dir / "supervisord.conf"
    path.write_text(config(programs, run_dir, log_dir))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", type=Path, default=Path(os.environ.get("KEFU_PROCFILE", "Procfile")))
    parser.add_argument("--run-dir", type=Path, default=PROJECT_ROOT / "var" / "run")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "var" / "log")
    parser.add_argument("only", nargs="*", metavar="PROCESS", help="run only these (default: all)")
    args = parser.parse_args(argv)
    path = write_config(args.procfile.resolve(), args.run_dir.resolve(), args.log_dir.resolve(), args.only)
    supervisord = str(Path(sys.executable).parent / "supervisord")
    os.execv(supervisord, [supervisord, "-c", str(path)])


if __name__ == "__main__":
    main()
