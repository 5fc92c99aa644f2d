"""The supervisord configuration `make run` writes from the Procfile."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT
from bot.supervise import write_config


def _read(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser


def test_every_procfile_process_and_the_watchdog_are_supervised_with_their_own_logs(tmp_path: Path) -> None:
    conf = _read(write_config(PROJECT_ROOT / "Procfile", tmp_path / "run", tmp_path / "log"))
    programs = sorted(s.removeprefix("program:") for s in conf.sections() if s.startswith("program:"))
    assert programs == ["actions", "gateway", "mail", "rasa", "watchdog"]
    for name in programs:
        section = conf[f"program:{name}"]
        assert section["autorestart"] == "true" and section["stopasgroup"] == "true"
        assert section["stdout_logfile"] == str(tmp_path / "log" / f"{name}.log")
    assert "bot.watchdog" in conf["program:watchdog"]["command"]
    assert conf["supervisord"]["nodaemon"] == "true"  # in the foreground: Ctrl-C stops everything
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700  # the control socket restarts anything


def test_a_restart_first_ends_what_the_previous_run_left_and_percent_signs_survive(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: exec echo 100%\n# a comment: ignored\n")
    conf = _read(write_config(procfile, tmp_path / "run", tmp_path / "log"))
    command = conf["program:web"]["command"]
    assert "100%%" in command  # supervisord reads %(...)s; a literal % is doubled
    assert 'kill -KILL -- "-$previous"' in command and str(tmp_path / "run" / "web.pgid") in command


def test_only_the_named_processes_and_an_unknown_name_is_refused(tmp_path: Path) -> None:
    conf = _read(write_config(PROJECT_ROOT / "Procfile", tmp_path / "run", tmp_path / "log", ["gateway"]))
    assert [s for s in conf.sections() if s.startswith("program:")] == ["program:gateway", "program:watchdog"]
    with pytest.raises(SystemExit, match="no process named gatewya"):
        write_config(PROJECT_ROOT / "Procfile", tmp_path / "run", tmp_path / "log", ["gatewya"])


def test_groups_recorded_by_an_earlier_supervisord_are_forgotten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "actions.pgid").write_text("4242\n")  # that id may belong to someone else's processes now
    write_config(PROJECT_ROOT / "Procfile", run, tmp_path / "log")
    assert not (run / "actions.pgid").exists()
