"""The local infrastructure scripts (deploy/local/kafka.sh, deploy/local/postgres.sh).

They run a real broker and a real PostgreSQL on their own ports and in a throw-away
state dir, so they never touch the instances of `make run` / `make test`:
start twice is idempotent, a `kill -9` is recovered by the next `start`, and a port
held by another process gives a clear message and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "local" / "kafka.sh"
POSTGRES_SH = REPO / "deploy" / "local" / "postgres.sh"

# INFRA_PORT_OFFSET moves them all (two checkouts testing side by side would otherwise
# start their throw-away brokers on the same ports and fail each other's tests).
_OFFSET = int(os.environ.get("INFRA_PORT_OFFSET", "0"))
KAFKA_PORT = 29092 + _OFFSET
KAFKA_CONTROLLER_PORT = 29093 + _OFFSET
PG_PORT = 25432 + _OFFSET
PG_DATABASES = "autodm autodm_test"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs java 17+"),
    pytest.mark.skipif(
        shutil.which("pg_ctl") is None and not Path("/usr/lib/postgresql").is_dir(),
        reason="needs the PostgreSQL server binaries",
    ),
]


def run(
    script: Path, *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run a script; stdout and stderr together in .stdout."""
    return subprocess.run(
        [str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(script: Path, *args: str, env: dict[str, str]) -> str:
    res = run(script, *args, env=env)
    assert res.returncode == 0, f"{script.name} {args} exited {res.returncode}:\n{res.stdout}"
    return res.stdout


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.1)


@contextlib.contextmanager
def listening_on(port: int) -> Iterator[socket.socket]:
    """Another process's listener on 127.0.0.1:port (here: this test process)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    # mkdtemp, not tmp_path: pytest's base folder is 0700 and root-owned, which the
    # postgres user cannot traverse (the script would fall back to /var/tmp).
    state = tempfile.mkdtemp(prefix="autodm-infra-test-")
    e = dict(os.environ)
    for key in ("KAFKA_OVERRIDES", "KAFKA_JAVA_OPTS", "PG_BIN"):
        e.pop(key, None)
    e.update(
        AUTODM_STATE_DIR=state,
        KAFKA_PORT=str(KAFKA_PORT),
        KAFKA_CONTROLLER_PORT=str(KAFKA_CONTROLLER_PORT),
        KAFKA_START_TIMEOUT="90",
        PG_PORT=str(PG_PORT),
        PG_DATABASES=PG_DATABASES,
        PG_FAST="1",
        PG_FRESH="0",
    )
    try:
        yield e
    finally:
        run(KAFKA_SH, "stop", env=e)
        run(POSTGRES_SH, "stop", env=e)
        shutil.rmtree(state, ignore_errors=True)


def kafka_pid(env: dict[str, str]) -> int:
    return int((Path(env["AUTODM_STATE_DIR"]) / "kafka" / "kafka.pid").read_text().strip())


def postgres_pid(env: dict[str, str]) -> int:
    pidfile = Path(env["AUTODM_STATE_DIR"]) / "postgres" / "data" / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0])


async def kafka_roundtrip(bootstrap: str) -> None:
    """Create a topic, produce and consume one message; unknown topics are not auto-created."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    topic = f"infra-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        res = await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert all(code == 0 for _, code, *_ in res.topic_errors), res.topic_errors
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
        with pytest.raises((KafkaError, asyncio.TimeoutError)):
            await asyncio.wait_for(producer.send_and_wait(f"{topic}-unknown", b"x"), 15)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=topic, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
        assert (msg.key, msg.value) == (b"k", b"hello")
    finally:
        await consumer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert f"{topic}-unknown" not in await admin.list_topics()
    finally:
        await admin.close()


async def postgres_check(url: str, databases: list[str]) -> None:
    """Connect with the URL that `postgres.sh url` prints (SQLAlchemy + asyncpg)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    base = url.rsplit("/", 1)[0]
    for db in databases:
        engine = create_async_engine(f"{base}/{db}")
        try:
            async with engine.begin() as conn:
                assert (await conn.execute(text("SELECT current_database()"))).scalar() == db
                await conn.execute(
                    text("CREATE TABLE IF NOT EXISTS infra_probe (id int PRIMARY KEY)")
                )
                await conn.execute(
                    text("INSERT INTO infra_probe VALUES (1) ON CONFLICT DO NOTHING")
                )
                count = (await conn.execute(text("SELECT count(*) FROM infra_probe"))).scalar()
                assert count == 1
        finally:
            await engine.dispose()


# ------------------------------------------------------------------------- Kafka


def test_kafka_start_twice_is_idempotent(env: dict[str, str]) -> None:
    ok(KAFKA_SH, "start", env=env)
    pid = kafka_pid(env)
    out = ok(KAFKA_SH, "start", env=env)
    assert "already running" in out
    assert kafka_pid(env) == pid
    assert "running" in ok(KAFKA_SH, "status", env=env)
    assert "ready" in ok(KAFKA_SH, "wait", "10", env=env)
    asyncio.run(kafka_roundtrip(f"127.0.0.1:{KAFKA_PORT}"))


def test_kafka_start_recovers_after_kill_9(env: dict[str, str]) -> None:
    ok(KAFKA_SH, "start", env=env)
    old = kafka_pid(env)
    kill_9(old)
    status = run(KAFKA_SH, "status", env=env)
    assert status.returncode == 3, status.stdout
    assert "stale pid file" in status.stdout

    out = ok(KAFKA_SH, "start", env=env)
    assert "stale pid file" in out
    new = kafka_pid(env)
    assert new != old and pid_alive(new)
    asyncio.run(kafka_roundtrip(f"127.0.0.1:{KAFKA_PORT}"))


def test_kafka_stop_then_stop_again(env: dict[str, str]) -> None:
    ok(KAFKA_SH, "start", env=env)
    pid = kafka_pid(env)
    assert "stopped" in ok(KAFKA_SH, "stop", env=env)
    assert not pid_alive(pid)
    assert "not running" in ok(KAFKA_SH, "stop", env=env)
    assert run(KAFKA_SH, "status", env=env).returncode == 3


@pytest.mark.parametrize(
    ("var", "port"),
    [("KAFKA_PORT", KAFKA_PORT), ("KAFKA_CONTROLLER_PORT", KAFKA_CONTROLLER_PORT)],
)
def test_kafka_port_taken_by_another_process(env: dict[str, str], var: str, port: int) -> None:
    ok(KAFKA_SH, "stop", env=env)
    with listening_on(port):
        res = run(KAFKA_SH, "start", env=env)
    assert res.returncode == 1, res.stdout
    assert f"port {port} is already in use by another process" in res.stdout
    assert f"{var}=" in res.stdout
    assert not (Path(env["AUTODM_STATE_DIR"]) / "kafka" / "kafka.pid").exists()


# ---------------------------------------------------------------------- Postgres


def test_postgres_start_twice_is_idempotent(env: dict[str, str]) -> None:
    ok(POSTGRES_SH, "start", env=env)
    pid = postgres_pid(env)
    out = ok(POSTGRES_SH, "start", env=env)
    assert "already running" in out
    assert postgres_pid(env) == pid
    assert "running" in ok(POSTGRES_SH, "status", env=env)
    url = ok(POSTGRES_SH, "url", env=env).strip()
    assert url == f"postgresql+asyncpg://autodm:autodm@127.0.0.1:{PG_PORT}/autodm"
    asyncio.run(postgres_check(url, PG_DATABASES.split()))


def test_postgres_start_recovers_after_kill_9(env: dict[str, str]) -> None:
    ok(POSTGRES_SH, "start", env=env)
    old = postgres_pid(env)
    kill_9(old)
    assert run(POSTGRES_SH, "status", env=env).returncode == 3
    ok(POSTGRES_SH, "start", env=env)
    new = postgres_pid(env)
    assert new != old and pid_alive(new)
    url = ok(POSTGRES_SH, "url", env=env).strip()
    asyncio.run(postgres_check(url, PG_DATABASES.split()))


def test_postgres_port_taken_by_another_process(env: dict[str, str]) -> None:
    ok(POSTGRES_SH, "stop", env=env)
    assert "not running" in ok(POSTGRES_SH, "stop", env=env)
    with listening_on(PG_PORT):
        res = run(POSTGRES_SH, "start", env=env)
    assert res.returncode == 1, res.stdout
    assert f"port {PG_PORT} is already in use by another process" in res.stdout
    assert "PG_PORT=" in res.stdout


# ------------------------------------------------------------------- run.sh (make run)

RUN_SH = REPO / "deploy" / "local" / "run.sh"


def test_ctrl_c_stops_kafka_and_postgres_when_the_output_is_piped_to_tee(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`make run 2>&1 | tee run.log`, then Ctrl-C: the terminal signals the whole
    foreground group, tee dies with it, and the stop handler writes to a closed pipe. It
    used to die of that write and leave Kafka and PostgreSQL running."""
    stand_in = tmp_path / "stack.sh"  # the services' stack, ended by Ctrl-C like it
    stand_in.write_text('echo "stack up"\nexec sleep 600\n')
    log = tmp_path / "run.log"
    shell = subprocess.Popen(
        ["/bin/bash", "-c", f"bash {RUN_SH} 2>&1 | tee {log} >/dev/null"],
        cwd=REPO,
        env={**env, "AUTODM_RUN_STACK": f"bash {stand_in}"},
        start_new_session=True,  # its own group: the "terminal" of this test
    )
    try:
        deadline = time.monotonic() + 240
        while "stack up" not in (log.read_text() if log.exists() else ""):
            assert shell.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "run.sh did not come up"
            time.sleep(0.2)
        assert run(KAFKA_SH, "status", env=env).returncode == 0
        assert run(POSTGRES_SH, "status", env=env).returncode == 0
        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C
        shell.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    assert run(KAFKA_SH, "status", env=env).returncode == 3, "Kafka still running"
    assert run(POSTGRES_SH, "status", env=env).returncode == 3, "PostgreSQL still running"
    stop_log = (Path(env["AUTODM_STATE_DIR"]) / "logs" / "stop.log").read_text()
    assert "stopped" in stop_log
