#!/usr/bin/env bash
# SQL statements per DM: a flat-out bench run (N leads, default 1000) on a stack of its own
# with pg_stat_statements on, then every statement run at least N/4 times, with its calls
# per lead. A figure the machine's load does not change (unlike CPU per DM), so it can be
# measured beside other work. Ports: KAFKA_PORT (19792), PG_PORT (16132),
# BENCH_PORT_BASE (9500; the sandbox at +10080). Extra arguments go to `python -m bench`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export AUTODM_STATE_DIR=${AUTODM_STATE_DIR:-$PWD/.local/bench-statements}
export KAFKA_PORT=${KAFKA_PORT:-19792} KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19793}
export PG_PORT=${PG_PORT:-16132} BENCH_PORT_BASE=${BENCH_PORT_BASE:-9500}
export PG_DATABASES=autodm_bench PG_FRESH=1
export PG_EXTRA_CONF="shared_preload_libraries='pg_stat_statements';pg_stat_statements.track='all';pg_stat_statements.max=5000"
N=${N:-1000}
trap 'bash deploy/local/kafka.sh stop >/dev/null || true; bash deploy/local/postgres.sh stop >/dev/null || true' EXIT
bash deploy/local/kafka.sh start
bash deploy/local/postgres.sh start
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
sock=$(readlink -f "$AUTODM_STATE_DIR/postgres")/socket
admin=("$PG_BIN/psql" -h "$sock" -p "$PG_PORT" -U postgres -d autodm_bench -X -q)
if [ "$(id -u)" = 0 ]; then admin=(runuser -u postgres -- "${admin[@]}"); fi
"${admin[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
.venv/bin/python -m bench --rates --flat-out "$N" --scale-accounts 0 --no-echo-phase "$@"
"${admin[@]}" -c "
WITH leads AS (SELECT count(*)::numeric AS n FROM leads)
SELECT round(calls / leads.n, 2) AS per_lead, calls, round(total_exec_time::numeric) AS ms,
       left(regexp_replace(query, '\s+', ' ', 'g'), 150) AS statement
FROM pg_stat_statements, leads WHERE calls >= $N / 4 ORDER BY calls DESC LIMIT 40"
"${admin[@]}" -c "
WITH leads AS (SELECT count(*)::numeric AS n FROM leads)
SELECT round(sum(calls) FILTER (WHERE query NOT LIKE '%FOR KEY SHARE OF x%') / max(leads.n), 1)
       AS round_trips_per_lead,
       round(sum(calls) FILTER (WHERE query IN ('COMMIT', 'END')) / max(leads.n), 2)
       AS commits_per_lead
FROM pg_stat_statements, leads"
# Kafka records per lead, by topic (the end offsets: the stack's topics start empty).
.venv/bin/python - "$KAFKA_PORT" <<'PY'
import asyncio, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> None:
    bootstrap = f"127.0.0.1:{sys.argv[1]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if not t.startswith("__"))
        described = await admin.describe_topics(topics)
        parts = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        ends = await consumer.end_offsets(parts)
        for topic in topics:
            print(f"kafka records {topic}: {sum(v for k, v in ends.items() if k.topic == topic)}")
    finally:
        await consumer.stop()
        await admin.close()


asyncio.run(main())
PY
