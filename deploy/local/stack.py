"""Run AutoDM's processes locally: the Meta sandbox and every service, as child processes.

Kafka and PostgreSQL are started by deploy/local/kafka.sh and postgres.sh (the Makefile
calls them first); this module migrates, provisions topics, starts the processes, waits
until each answers /readyz, and stops them all on exit. The e2e tests use it too, so the
tests run exactly what `make run` runs. Under `make run` a `Supervisor` restarts a child
that dies, with backoff, as Kubernetes does in production.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@dataclass(frozen=True)
class StackPorts:
    kafka: int = 19092
    postgres: int = 15432
    sandbox: int = 18080
    api: int = 8000
    webhook_ingest: int = 8001
    instagram_sender: int = 8002
    whatsapp_sender: int = 8003
    token_refresher: int = 8004
    api_workers: int = 8005
    local_issuer: int = 18090

    @classmethod
    def from_env(cls) -> StackPorts:
        base = cls()
        return cls(
            kafka=int(os.environ.get("KAFKA_PORT", base.kafka)),
            postgres=int(os.environ.get("PG_PORT", base.postgres)),
            sandbox=int(os.environ.get("SANDBOX_PORT", base.sandbox)),
            api=int(os.environ.get("AUTODM_API_PORT", base.api)),
            webhook_ingest=int(os.environ.get("AUTODM_WEBHOOK_INGEST_PORT", base.webhook_ingest)),
            instagram_sender=int(
                os.environ.get("AUTODM_INSTAGRAM_SENDER_PORT", base.instagram_sender)
            ),
            whatsapp_sender=int(
                os.environ.get("AUTODM_WHATSAPP_SENDER_PORT", base.whatsapp_sender)
            ),
            api_workers=int(os.environ.get("AUTODM_API_WORKERS_PORT", base.api_workers)),
            token_refresher=int(
                os.environ.get("AUTODM_TOKEN_REFRESHER_PORT", base.token_refresher)
            ),
            local_issuer=int(os.environ.get("LOCAL_ISSUER_PORT", base.local_issuer)),
        )


def stack_env(ports: StackPorts, database: str = "autodm") -> dict[str, str]:
    sandbox = f"http://127.0.0.1:{ports.sandbox}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTODM_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
        "AUTODM_DATABASE_URL": (
            f"postgresql+asyncpg://autodm:autodm@127.0.0.1:{ports.postgres}/{database}"
        ),
        "AUTODM_INSTAGRAM_GRAPH_URL": sandbox,
        "AUTODM_INSTAGRAM_OAUTH_URL": sandbox,
        "AUTODM_INSTAGRAM_AUTHORIZE_URL": f"{sandbox}/oauth/authorize",
        "AUTODM_WHATSAPP_GRAPH_URL": sandbox,
        "AUTODM_API_PORT": str(ports.api),
        "AUTODM_WEBHOOK_INGEST_PORT": str(ports.webhook_ingest),
        "AUTODM_INSTAGRAM_SENDER_PORT": str(ports.instagram_sender),
        "AUTODM_WHATSAPP_SENDER_PORT": str(ports.whatsapp_sender),
        "AUTODM_TOKEN_REFRESHER_PORT": str(ports.token_refresher),
        "AUTODM_API_WORKERS_PORT": str(ports.api_workers),
        # The development identity provider; production points these at the real one.
        "LOCAL_ISSUER_PORT": str(ports.local_issuer),
        "LOCAL_ISSUER_ISSUER": f"http://127.0.0.1:{ports.local_issuer}",
        "AUTODM_JWT_ISSUER": f"http://127.0.0.1:{ports.local_issuer}",
        "AUTODM_JWKS_URL": f"http://127.0.0.1:{ports.local_issuer}/.well-known/jwks.json",
        # Web sign-in: the local issuer's authorization-code flow; plain http, so the
        # session cookie can't be Secure here (only allowed in local/test environments).
        "AUTODM_WEB_AUTHORIZE_URL": f"http://127.0.0.1:{ports.local_issuer}/authorize",
        "AUTODM_WEB_TOKEN_URL": f"http://127.0.0.1:{ports.local_issuer}/oauth/token",
        "AUTODM_WEB_AUDIENCE": "autodm-api",
        "AUTODM_WEB_COOKIE_SECURE": "false",
        "AUTODM_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports.api}",
        "AUTODM_WEBHOOK_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports.webhook_ingest}",
        "SANDBOX_PORT": str(ports.sandbox),
        "SANDBOX_INSTAGRAM_WEBHOOK_URL": (
            f"http://127.0.0.1:{ports.webhook_ingest}/webhooks/instagram"
        ),
        "SANDBOX_WHATSAPP_WEBHOOK_URL": f"http://127.0.0.1:{ports.webhook_ingest}/webhooks/whatsapp",
        # The lead ingress (README): the README's producer example names `demo-crm`.
        "AUTODM_LEAD_INGRESS_PRODUCERS": os.environ.get(
            "AUTODM_LEAD_INGRESS_PRODUCERS", '{"demo-crm": ["*"]}'
        ),
    }
    return env


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    module: str
    port: int
    ready_path: str = "/readyz"
    args: tuple[str, ...] = ()  # after `python -m <module>`


def process_specs(ports: StackPorts) -> list[ProcessSpec]:
    return [
        ProcessSpec("sandbox", "sandbox", ports.sandbox, "/_sandbox/stats"),
        ProcessSpec("local_issuer", "local_issuer", ports.local_issuer, "/.well-known/jwks.json"),
        ProcessSpec("api", "services.api", ports.api),
        ProcessSpec("api_workers", "services.api.workers", ports.api_workers),
        ProcessSpec("instagram_sender", "services.instagram_sender", ports.instagram_sender),
        ProcessSpec("whatsapp_sender", "services.whatsapp_sender", ports.whatsapp_sender),
        ProcessSpec("webhook_ingest", "services.webhook_ingest", ports.webhook_ingest),
        ProcessSpec("token_refresher", "services.token_refresher", ports.token_refresher),
    ]


def prepare(env: dict[str, str]) -> None:
    """Migrate the database and provision topics (both idempotent)."""
    subprocess.run([PYTHON, "-m", "alembic", "upgrade", "heads"], cwd=ROOT, env=env, check=True)
    subprocess.run([PYTHON, "-m", "cli.main", "topics", "provision"], cwd=ROOT, env=env, check=True)


@dataclass
class Stack:
    env: dict[str, str]
    ports: StackPorts
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, specs: list[ProcessSpec], timeout_s: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            self.start_one(spec)
        for spec in specs:
            self.wait_ready(spec, timeout_s)

    def start_one(self, spec: ProcessSpec) -> None:
        _ensure_free(spec)
        log = (self.log_dir / f"{spec.name}.log").open("ab")
        self.processes[spec.name] = subprocess.Popen(
            [PYTHON, "-m", spec.module, *spec.args], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )

    def wait_ready(self, spec: ProcessSpec, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{spec.port}{spec.ready_path}"
        while time.monotonic() < deadline:
            proc = self.processes[spec.name]
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {proc.returncode}; see {self.log_dir}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet: poll again
            time.sleep(0.2)
        raise TimeoutError(f"{spec.name} not ready at {url} after {timeout_s}s; see {self.log_dir}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()


@dataclass(frozen=True)
class Backoff:
    """Seconds before restarting a child that died: doubling from `first_s` to `max_s`;
    a child that stayed up `healthy_s` starts again from `first_s`."""

    first_s: float = 1.0
    max_s: float = 30.0
    healthy_s: float = 60.0

    def delay(self, restarts: int) -> float:
        return min(self.first_s * 2.0**restarts, self.max_s)


@dataclass
class _Child:
    started_at: float
    restarts: int = 0  # consecutive: since it last stayed up healthy_s
    due_at: float | None = None  # when a dead child is to be started again


@dataclass
class Supervisor:
    """Restarts the stack's children that die (`make run`), each with its own backoff, and
    says so on the console and in `supervisor.log` beside the services' logs."""

    stack: Stack
    specs: list[ProcessSpec]
    backoff: Backoff = field(default_factory=Backoff)
    console: TextIO = field(default_factory=lambda: sys.stdout)
    children: dict[str, _Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = time.monotonic()
        self.children = {spec.name: _Child(started_at=now) for spec in self.specs}

    def run(self, poll_s: float = 0.5) -> None:
        """Until interrupted (Ctrl-C: KeyboardInterrupt)."""
        while True:
            self.check()
            time.sleep(poll_s)

    def check(self) -> None:
        now = time.monotonic()
        for spec in self.specs:
            child = self.children[spec.name]
            if child.due_at is None:
                self._notice_exit(spec, child, now)
            elif now >= child.due_at:
                self._restart(spec, child, now)

    def _notice_exit(self, spec: ProcessSpec, child: _Child, now: float) -> None:
        code = self.stack.processes[spec.name].poll()
        if code is None:
            if now - child.started_at >= self.backoff.healthy_s:
                child.restarts = 0
            return
        delay = self.backoff.delay(child.restarts)
        child.due_at = now + delay
        self.say(f"{spec.name} exited with code {code}; restarting in {delay:g}s")

    def _restart(self, spec: ProcessSpec, child: _Child, now: float) -> None:
        child.restarts += 1
        try:
            self.stack.start_one(spec)
        except RuntimeError as exc:  # its port is taken meanwhile: try again later
            child.due_at = now + self.backoff.delay(child.restarts)
            self.say(f"{spec.name} could not be restarted: {exc}")
            return
        child.due_at, child.started_at = None, now
        pid = self.stack.processes[spec.name].pid
        self.say(f"{spec.name} restarted (pid {pid}, restart {child.restarts})")

    def say(self, line: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        with (self.stack.log_dir / "supervisor.log").open("a") as log:
            log.write(f"{stamp} {line}\n")
        # The console may be a pipe whose reader is gone (`make run | tee` after Ctrl-C).
        with suppress(OSError, ValueError):
            print(f"supervisor: {line}", file=self.console, flush=True)


def _ensure_free(spec: ProcessSpec) -> None:
    """Refuse to start on a taken port: the readiness probe would otherwise talk to
    whatever else listens there and the stack would look healthy while it is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", spec.port)) == 0:
            raise RuntimeError(
                f"port {spec.port} for {spec.name} is already in use by another process; "
                "stop it or choose other ports (see StackPorts.from_env)"
            )


@contextmanager
def running_stack(ports: StackPorts, database: str, log_dir: Path) -> Iterator[Stack]:
    env = stack_env(ports, database)
    prepare(env)
    stack = Stack(env=env, ports=ports, log_dir=log_dir)
    try:
        stack.start(process_specs(ports))
        yield stack
    finally:
        stack.stop()


def _stop_on_signal() -> None:
    """Ctrl-C and `kill` both end in the one stop path (the stack's children stopped, then
    run.sh stops Kafka and PostgreSQL). Set explicitly: a shell that starts `make run` in
    the background hands it SIGINT ignored, and SIGTERM would kill this process at once,
    leaving the services running with nobody to stop them."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> int:
    _stop_on_signal()
    ports = StackPorts.from_env()
    log_dir = ROOT / ".local" / "run" / "logs"
    with running_stack(ports, "autodm", log_dir) as stack:
        print(f"AutoDM is up: API http://127.0.0.1:{ports.api}/docs  logs in {log_dir}")
        from demo import run_demo  # beside this file

        asyncio.run(run_demo(stack.env, ports))
        print("Ctrl-C stops everything. A service that dies is restarted (supervisor.log).")
        with suppress(KeyboardInterrupt):
            Supervisor(stack, process_specs(ports)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
