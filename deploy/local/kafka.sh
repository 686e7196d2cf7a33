#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, broker+controller) without Docker.
#
# usage: deploy/local/kafka.sh start|stop|status|wait [timeout-seconds]|jars
#
#   start   resolve the broker jars (cached), format the storage once, start the
#           broker in the background and wait until it is ready. Idempotent.
#   stop    SIGTERM, wait up to $KAFKA_STOP_TIMEOUT s, then SIGKILL. Fine if not running.
#   status  exit 0 = running and ready, 3 = not running, 4 = process alive but not ready.
#   wait    wait (default $KAFKA_START_TIMEOUT s) until the broker of this state dir is
#           ready; waits for a `start` running concurrently in another shell.
#   jars    only resolve the jar cache (for CI caching steps).
#
# Environment (all optional):
#   KAFKA_PORT              PLAINTEXT listener on 127.0.0.1        (default 19092)
#   KAFKA_CONTROLLER_PORT   CONTROLLER listener on 127.0.0.1       (default 19093)
#   AUTODM_STATE_DIR        state root; data/logs in $AUTODM_STATE_DIR/kafka
#                                                                   (default <repo>/.local/run)
#   KAFKA_LIBS_DIR          jar cache                               (default <repo>/.local/kafka-libs)
#   KAFKA_HEAP              -Xms/-Xmx                               (default 512m)
#   KAFKA_START_TIMEOUT     readiness timeout in s                  (default 90)
#   KAFKA_STOP_TIMEOUT      graceful stop timeout in s              (default 30)
#   KAFKA_OVERRIDES         extra broker settings, space separated k=v pairs
#   KAFKA_JAVA_OPTS         extra JVM options
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
STATE_DIR=${AUTODM_STATE_DIR:-$REPO/.local/run}
LIBS_DIR=${KAFKA_LIBS_DIR:-$REPO/.local/kafka-libs}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_OVERRIDES=${KAFKA_OVERRIDES:-}
KAFKA_JAVA_OPTS=${KAFKA_JAVA_OPTS:-}

POM=$SCRIPT_DIR/kafka/pom.xml
LOG4J_CONF=$SCRIPT_DIR/kafka/log4j2.properties
READY_LINE="Kafka Server started"

log() { printf 'kafka.sh: %s\n' "$*"; }
err() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; }

for var in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT; do
    if ! [[ ${!var} =~ ^[0-9]+$ ]]; then
        err "$var must be a number, got '${!var}'"
        exit 2
    fi
done
if [[ $KAFKA_PORT == "$KAFKA_CONTROLLER_PORT" ]]; then
    err "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ (both are $KAFKA_PORT)"
    exit 2
fi

mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
KDIR=$STATE_DIR/kafka
DATA_DIR=$KDIR/data
LOG_DIR=$KDIR/logs
PID_FILE=$KDIR/kafka.pid
PROPS=$KDIR/server.properties
CLUSTER_ID_FILE=$KDIR/cluster.id
LOCK_FILE=$KDIR/.lock
SERVER_LOG=$LOG_DIR/server.log
OUT_LOG=$LOG_DIR/kafka.out

# ---------------------------------------------------------------- helpers

kafka_version() {
    local v
    v=$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
    if [[ -z $v ]]; then
        err "cannot read <kafka.version> from $POM"
        exit 2
    fi
    printf '%s' "$v"
}

# Resolve kafka_2.13 and its runtime dependencies into $LIBS_DIR once per version.
# The marker file .complete-<version> is written last, so an interrupted run is redone.
ensure_jars() {
    local version marker tmp
    version=$(kafka_version)
    marker=$LIBS_DIR/.complete-$version
    if [[ -f $marker && -f $LIBS_DIR/kafka_2.13-$version.jar ]]; then
        return 0
    fi
    command -v mvn >/dev/null || { err "mvn (Maven) not found; needed once to fetch the Kafka jars"; exit 2; }
    mkdir -p "$(dirname "$LIBS_DIR")"
    # Serialise concurrent resolutions (two scripts/tests starting at once).
    exec 8>"$LIBS_DIR.lock"
    flock 8
    if [[ -f $marker && -f $LIBS_DIR/kafka_2.13-$version.jar ]]; then
        flock -u 8
        return 0
    fi
    log "resolving kafka_2.13 $version and its runtime jars into $LIBS_DIR (once) ..."
    tmp=$(mktemp -d "$LIBS_DIR.tmp.XXXXXX")
    chmod 755 "$tmp"
    if ! (cd "$SCRIPT_DIR/kafka" && mvn -B -q -Dstyle.color=never \
            dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1); then
        err "Maven could not resolve the Kafka jars:"
        tail -n 40 "$tmp.mvn.log" >&2 || true
        rm -rf "$tmp" "$tmp.mvn.log"
        flock -u 8
        exit 1
    fi
    rm -f "$tmp.mvn.log"
    if [[ ! -f $tmp/kafka_2.13-$version.jar ]]; then
        err "Maven finished but kafka_2.13-$version.jar is missing in $tmp"
        flock -u 8
        exit 1
    fi
    echo "$version" >"$tmp/.complete-$version"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    flock -u 8
    log "cached $(find "$LIBS_DIR" -maxdepth 1 -name '*.jar' | wc -l) jars for Kafka $version"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_answers() {
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True if some socket is listening on TCP port $1 (any address).
port_listening() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
    else
        port_answers "$1"
    fi
}

# Best-effort description of who listens on port $1.
port_owner() {
    local line
    if command -v ss >/dev/null; then
        line=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true)
        [[ -n $line ]] && printf ' (%s)' "$line"
    fi
    return 0
}

read_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid=$(tr -dc '0-9' <"$PID_FILE")
    [[ -n $pid ]] || return 1
    printf '%s' "$pid"
}

# True if process $1 exists and is not a zombie.
pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)
    [[ $state != Z ]]
}

# True if $1 is alive AND is our broker (guards against pid reuse after a crash/reboot).
is_our_broker() {
    local pid=$1
    pid_alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$PROPS" || return 1
    fi
    return 0
}

# Prints the pid of our running broker, or fails.
running_pid() {
    local pid
    pid=$(read_pid) || return 1
    is_our_broker "$pid" || return 1
    printf '%s' "$pid"
}

is_ready() {
    local pid=$1
    is_our_broker "$pid" && port_answers "$KAFKA_PORT" &&
        grep -qF "$READY_LINE" "$SERVER_LOG" 2>/dev/null
}

show_logs() {
    if [[ -s $SERVER_LOG ]]; then
        echo "----- last 40 lines of $SERVER_LOG -----" >&2
        tail -n 40 "$SERVER_LOG" >&2
    fi
    if [[ -s $OUT_LOG ]]; then
        echo "----- last 40 lines of $OUT_LOG -----" >&2
        tail -n 40 "$OUT_LOG" >&2
    fi
    echo "-----" >&2
}

# Wait until the broker with pid $1 is ready. $2 = timeout in s.
wait_ready() {
    local pid=$1 timeout=$2 deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        # pid_alive, not is_our_broker: until the forked shell has exec'd the JVM its
        # command line is still this script's.
        if ! pid_alive "$pid"; then
            err "the broker (pid $pid) exited during startup"
            show_logs
            return 1
        fi
        if is_ready "$pid"; then
            return 0
        fi
        sleep 0.5
    done
    err "the broker (pid $pid) was not ready after ${timeout}s (port $KAFKA_PORT answering and \"$READY_LINE\" in the log)"
    show_logs
    return 1
}

write_props() {
    cat >"$PROPS.tmp" <<EOF
# Generated by deploy/local/kafka.sh on every start; edits are overwritten.
# Use KAFKA_OVERRIDES="key=value ..." for extra settings.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
group.coordinator.append.linger.ms=0
log.retention.hours=168
log.segment.bytes=268435456
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    local kv
    for kv in $KAFKA_OVERRIDES; do
        if [[ $kv != *=* ]]; then
            err "KAFKA_OVERRIDES entries must look like key=value, got '$kv'"
            exit 2
        fi
        echo "$kv" >>"$PROPS.tmp"
    done
    mv "$PROPS.tmp" "$PROPS"
}

java_cmd() {
    # Same shape as kafka-run-class.sh, minus the distribution layout.
    # shellcheck disable=SC2086
    printf '%s\0' java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$LOG4J_CONF" "-Dkafka.logs.dir=$LOG_DIR" \
        $KAFKA_JAVA_OPTS -cp "$LIBS_DIR/*"
}

format_storage() {
    if [[ -f $DATA_DIR/meta.properties ]]; then
        return 0
    fi
    local cid
    if [[ -s $CLUSTER_ID_FILE ]]; then
        cid=$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")
    else
        local -a jc
        mapfile -d '' -t jc < <(java_cmd)
        cid=$("${jc[@]}" kafka.tools.StorageTool random-uuid 2>>"$OUT_LOG" | tail -n1 | tr -d '[:space:]')
        [[ -n $cid ]] || { err "could not generate a cluster id"; show_logs; exit 1; }
        echo "$cid" >"$CLUSTER_ID_FILE"
    fi
    log "formatting storage in $DATA_DIR (cluster id $cid)"
    local -a jc
    mapfile -d '' -t jc < <(java_cmd)
    if ! "${jc[@]}" kafka.tools.StorageTool format -t "$cid" -c "$PROPS" --ignore-formatted \
            >>"$OUT_LOG" 2>&1; then
        err "formatting the storage failed"
        show_logs
        exit 1
    fi
}

check_ports_free() {
    local var port
    for var in KAFKA_PORT KAFKA_CONTROLLER_PORT; do
        port=${!var}
        if port_listening "$port"; then
            err "port $port is already in use by another process$(port_owner "$port")."
            err "Stop that process or choose a free port with $var=<port> (e.g. $var=$((port + 1000)) $0 start)."
            return 1
        fi
    done
}

# ---------------------------------------------------------------- commands

cmd_start() {
    command -v java >/dev/null || { err "java not found (Kafka 4.x needs Java 17+)"; exit 2; }
    mkdir -p "$KDIR" "$DATA_DIR" "$LOG_DIR"
    exec 9>"$LOCK_FILE"
    flock 9   # one start/stop at a time for this state dir

    local pid
    if pid=$(running_pid); then
        if is_ready "$pid"; then
            log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        log "process $pid is up but not ready yet; waiting ..."
        wait_ready "$pid" "$KAFKA_START_TIMEOUT" || exit 1
        log "ready (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    if [[ -f $PID_FILE ]]; then
        log "removing stale pid file $PID_FILE (pid $(read_pid || echo '?') is not running; crashed or killed?)"
        rm -f "$PID_FILE"
    fi

    check_ports_free || exit 1
    ensure_jars
    write_props
    format_storage

    # Keep the previous run's log for post-mortems; readiness is read from a fresh log.
    [[ -f $SERVER_LOG ]] && mv -f "$SERVER_LOG" "$LOG_DIR/server.previous.log"
    [[ -f $OUT_LOG ]] && mv -f "$OUT_LOG" "$LOG_DIR/kafka.previous.out"

    local -a jc
    mapfile -d '' -t jc < <(java_cmd)
    log "starting Kafka $(kafka_version) on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), state in $KDIR"
    # setsid: own session, so Ctrl-C in the caller's terminal or the end of a CI step
    # does not take the broker down with it; `stop` is the way to end it.
    # 8>&- 9>&-: the broker must not inherit (and so hold) the lock file descriptors.
    setsid nohup "${jc[@]}" kafka.Kafka "$PROPS" </dev/null >>"$OUT_LOG" 2>&1 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"

    if ! wait_ready "$pid" "$KAFKA_START_TIMEOUT"; then
        if pid_alive "$pid"; then
            log "killing the half-started broker (pid $pid)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$PID_FILE"
        exit 1
    fi
    log "ready (pid $pid) on 127.0.0.1:$KAFKA_PORT after ${SECONDS}s"
}

cmd_stop() {
    mkdir -p "$KDIR"
    exec 9>"$LOCK_FILE"
    flock 9
    local pid
    if ! pid=$(running_pid); then
        if [[ -f $PID_FILE ]]; then
            log "not running (removing stale pid file)"
            rm -f "$PID_FILE"
        else
            log "not running"
        fi
        return 0
    fi
    log "stopping (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if pid_alive "$pid"; then
        log "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid"; do sleep 0.2; done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        if is_ready "$pid"; then
            log "running (pid $pid) on 127.0.0.1:$KAFKA_PORT, state in $KDIR"
            return 0
        fi
        log "process $pid is alive but not ready (starting, stopping or port $KAFKA_PORT not answering)"
        return 4
    fi
    if [[ -f $PID_FILE ]]; then
        log "not running (stale pid file $PID_FILE)"
    else
        log "not running"
    fi
    return 3
}

cmd_wait() {
    local timeout=${1:-$KAFKA_START_TIMEOUT}
    [[ $timeout =~ ^[0-9]+$ ]] || { err "wait: timeout must be a number of seconds"; exit 2; }
    mkdir -p "$KDIR"
    # A `start` in progress holds the lock until the broker is ready (or failed).
    exec 9>"$LOCK_FILE"
    if ! flock -w "$timeout" 9; then
        err "timed out after ${timeout}s waiting for a concurrent start/stop"
        exit 1
    fi
    flock -u 9
    local pid
    if ! pid=$(running_pid); then
        err "not running (start it with $0 start)"
        exit 1
    fi
    wait_ready "$pid" "$timeout" || exit 1
    log "ready (pid $pid) on 127.0.0.1:$KAFKA_PORT"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
wait) cmd_wait "${2:-}" ;;
jars) ensure_jars; log "jars for Kafka $(kafka_version) in $LIBS_DIR" ;;
*)
    echo "usage: $0 start|stop|status|wait [timeout-seconds]|jars" >&2
    exit 2
    ;;
esac
