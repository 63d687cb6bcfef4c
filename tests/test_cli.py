"""`python -m agent <command>`: LiveKit's commands (start, dev, console) and our other programs
behind one command line; settings errors exit 2 with what to set."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.__main__ import main
from agent.cli import PROGRAMS, program_argv
from callab.standins.chat_script import ChatScript
from callab.standins.openai_chat import OpenAIChatStandin
from integrations.embedded import EmbeddedCrm, EmbeddedStore
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.integration

VOICE_KEYS = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY")
LIVEKIT = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No provider or LiveKit settings, no `.env` (the cwd is empty)."""
    for name in (*VOICE_KEYS, *LIVEKIT, "OPENAI_BASE_URL", "HUBSPOT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*VOICE_KEYS, *LIVEKIT)}
    env.pop("OPENAI_BASE_URL", None)
    return {**env, "DATA_DIR": str(tmp_path / "data"), **extra}


def _agent(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=tmp_path,
                          env=_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.unit
def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    for command in ("start", "dev", "console", *PROGRAMS):
        assert f"\n    {command}" in listed, command


@pytest.mark.unit
@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    [
        ("api", [], ["leadapi"]),
        ("keys", ["create", "website"], ["leadapi", "keys", "create", "website"]),
        ("import", ["a.csv", "--campaign", "spring"],
         ["leadapi", "leads", "import", "a.csv", "--campaign", "spring"]),
        ("dialer", [], ["dialer"]),
        ("provision", [], ["telephony.provision"]),
        ("reps", ["list"], ["transfer", "reps", "list"]),
        ("invite", ["sam@example.com"], ["console", "invite", "sam@example.com"]),
        ("privacy", ["forget", "+14155550123"], ["privacy", "forget", "+14155550123"]),
        ("stack", ["--free-ports"], ["localstack", "--free-ports"]),
    ],
)  # fmt: skip
def test_each_program_is_run_with_the_words_after_its_command(command, arguments, expected):
    module, *rest = expected
    assert program_argv(command, arguments) == [sys.executable, "-m", module, *rest]


def test_a_subcommand_reaches_the_programs_main_with_its_arguments(tmp_path):
    created = _agent(tmp_path, "keys", "create", "website")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    leadapi = [sys.executable, "-m", "leadapi", "keys", "list"]
    listed = subprocess.run(leadapi, cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert "\twebsite\t" in listed.stdout and token not in listed.stdout
    refused = _agent(tmp_path, "import", "absent.csv", "--campaign", "spring")
    assert refused.returncode == 2
    assert "cannot import absent.csv" in refused.stderr


@pytest.mark.parametrize(
    ("command", "variable"),
    [(["reps", "list"], "BUSINESS_DAYS"), (["provision"], "SIP_OUTBOUND_TRANSPORT")],
)
def test_a_programs_bad_setting_exits_2_with_its_name(tmp_path, command, variable):
    done = _agent(tmp_path, *command, **{variable: "nonsense"})
    assert done.returncode == 2
    assert variable in done.stderr and "Traceback" not in done.stderr


@pytest.mark.unit
@pytest.mark.parametrize(
    ("argv", "named", "not_named"),
    [
        ([], VOICE_KEYS, ()),
        (["start"], VOICE_KEYS, ()),
        (["dev"], VOICE_KEYS, ()),
        (["console"], VOICE_KEYS, ()),
        (["console", "--text"], ("OPENAI_API_KEY",), ("DEEPGRAM_API_KEY", "CARTESIA_API_KEY")),
    ],
)
def test_missing_settings_exit_2_naming_only_what_the_command_uses(
    clean_env, capsys, argv, named, not_named
):
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert all(name in message for name in named)
    assert not any(name in message for name in not_named)


@pytest.mark.unit
def test_start_needs_a_configured_livekit(clean_env, monkeypatch, capsys):
    for name in VOICE_KEYS:
        monkeypatch.setenv(name, "k")
    assert main(["start"]) == 2
    message = capsys.readouterr().err
    assert all(name in message for name in LIVEKIT)
    assert "`dev`" in message


CONSOLE_SCRIPT = {
    "fallback": "Could you say that again?",
    "steps": [
        {
            "when": {"last_user_contains": "Dana"},
            "tool_calls": [
                {
                    "name": "save_contact_details",
                    "arguments": {
                        "first_name": "Dana",
                        "last_name": "Reyes",
                        "company": "Acme",
                        "email": "dana@acme.example",
                    },
                }
            ],
        },
        {
            "when": {"last_tool": "save_contact_details"},
            "say": "Thanks Dana, our plans start at forty dollars a seat.",
        },
        {"when": {"last_user_contains": "bye"}, "tool_calls": [{"name": "end_call"}]},
    ],
}


PROMPT_CURSOR = "\x1b[37m\u2588"  # the end of what the text console's prompt shows typed
KEY_ATTEMPTS = 5
KEY_ECHO_S = 1.5


class Terminal:
    """The console in a pseudo-terminal: LiveKit's text console reads keys from a tty."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.screen = ""

    def read_until(self, text: str, *, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while text not in self.screen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not shown; the screen ends: {self.screen[-2000:]}")
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.screen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:  # the console exited
                    time.sleep(0.1)

    def type_line(self, line: str) -> None:
        """A key at a time, each sent again until the prompt shows it: LiveKit's readkey()
        flushes the terminal's input (TCSAFLUSH) before each key it reads, so a key that
        arrives before it is waiting is lost (pasted text loses characters the same way)."""
        for typed in range(1, len(line) + 1):
            shown = f"{line[:typed]}{PROMPT_CURSOR}"
            for _ in range(KEY_ATTEMPTS):
                os.write(self.fd, line[typed - 1].encode())
                with contextlib.suppress(AssertionError):
                    self.read_until(shown, limit_s=KEY_ECHO_S)
                    break
            else:
                raise AssertionError(f"the console never took {line[:typed]!r}")
        os.write(self.fd, b"\n")

    def exit_code(self, *, limit_s: float) -> int | None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):  # the console exited
                    self.screen += os.read(self.fd, 65536).decode(errors="replace")
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


async def test_typing_to_the_text_console_with_only_an_llm(tmp_path):
    """No Deepgram, Cartesia or LiveKit: the OpenAI stand-in is the only service. What is
    typed reaches the LLM, its reply and tool calls are shown, the contact it saved and the
    conversation are in the embedded CRM, and end_call ends the console."""
    import asyncio

    llm = await OpenAIChatStandin(script=ChatScript.from_data(CONSOLE_SCRIPT)).start()
    env = _env(tmp_path, OPENAI_API_KEY="test", OPENAI_BASE_URL=llm.base_url,
               TERM="xterm", COLUMNS="120")  # fmt: skip
    console = Terminal([sys.executable, "-m", "agent", "console", "--text"], env, tmp_path)
    try:
        await asyncio.to_thread(console.read_until, "Type to talk to your agent", limit_s=90)
        await asyncio.to_thread(console.type_line, "I'm Dana Reyes from Acme, dana@acme.example")
        await asyncio.to_thread(console.read_until, "forty dollars a seat", limit_s=30)
        assert "save_contact_details" in console.screen  # LiveKit's console shows the tool
        await asyncio.to_thread(console.type_line, "That's all, bye")
        code = await asyncio.to_thread(console.exit_code, limit_s=60)
    finally:
        await llm.aclose()
    assert code == 0, console.screen[-2000:]
    typed = [r.messages[-1] for r in llm.requests if r.messages[-1].get("role") == "user"]
    assert typed[0]["content"] == "I'm Dana Reyes from Acme, dana@acme.example"

    store = EmbeddedStore(tmp_path / "data" / "embedded.sqlite3", now=lambda: FIXED_NOW)
    contacts = await store.run(lambda db: [dict(r) for r in db.execute("SELECT * FROM contacts")])
    (contact,) = contacts
    assert contact["email"] == "dana@acme.example"
    assert json.loads(contact["properties"])["company"] == "Acme"
    (logged,) = await EmbeddedCrm(store).calls()
    assert logged["contact_id"] == contact["id"]
    assert "Caller: I'm Dana Reyes from Acme" in logged["transcript"]
    assert "Agent: Thanks Dana, our plans start at forty dollars a seat." in logged["transcript"]


def test_dev_restarts_the_worker_when_a_source_file_changes(tmp_path):
    watched = tmp_path / "src"
    watched.mkdir()
    with socket.socket() as closed:  # a LiveKit URL where nothing listens: the worker retries
        closed.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{closed.getsockname()[1]}"
    livekit = {"LIVEKIT_URL": url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "s" * 32}
    env = _env(tmp_path, **dict.fromkeys(VOICE_KEYS, "k"), **livekit, WORKER_HTTP_PORT="0")
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        command = [sys.executable, "-m", "agent", "dev", "--watch", str(watched)]
        dev = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        _wait_for(log, "starting worker", count=1)
        assert '"level": "DEBUG"' in log.read_text()  # dev logs at DEBUG
        (watched / "changed.py").write_text("x = 1\n")
        _wait_for(log, "dev: reloading the worker; changed:", count=1)
        _wait_for(log, "starting worker", count=2)
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)
    assert "changed.py" in log.read_text()


def _wait_for(log: Path, text: str, *, count: int, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while log.read_text().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} x{count} not logged: {log.read_text()[-3000:]}")
        time.sleep(0.3)
