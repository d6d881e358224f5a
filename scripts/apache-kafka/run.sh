#!/bin/sh
# Apache Kafka 3.9.1 on this machine's JVM, one node in KRaft mode (broker and controller), set
# up like docker-compose.yml's `kafka` service: the broker production runs, without Docker.
#
#   sh scripts/apache-kafka/run.sh [start]    # prints "bootstrap: 127.0.0.1:PORT" and "pid: N"
#   sh scripts/apache-kafka/run.sh stop       # stops the broker this script started (pid file)
#   sh scripts/apache-kafka/run.sh status
#
# Environment:
#   KAFKA_PORT      client port (19092); the controller listens on KAFKA_PORT + 1
#   KAFKA_LOG_DIR   the log dir (default: a new temp dir, i.e. an empty cluster every start)
#   KAFKA_HEAP      JVM heap (1g)
#   KAFKA_CACHE     where the jars and the run state live (~/.cache/banwatch/kafka-3.9.1)
#   KAFKA_LIBS      a dir of jars to use instead of resolving them (e.g. the libs/ of an
#                   unpacked kafka_2.13-3.9.1.tgz), for machines that cannot reach Maven Central
#
# The jars are resolved once from Maven Central (scripts/apache-kafka/pom.xml, `mvn
# dependency:copy-dependencies`) into $KAFKA_CACHE/lib; java and maven are installed with
# apt-get only if missing (like scripts/system-deps.sh). Not for production: plaintext,
# loopback only, replication factor 1.
#
# UNVERIFIED: written on 2026-12-03 on a machine that reaches PyPI, Debian and npm only, so it
# has never got past resolving the jars (its failure paths were tried, nothing after them);
# whether the broker starts from these jars is unknown until a machine that has them runs it.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
version=3.9.1
cache="${KAFKA_CACHE:-${HOME}/.cache/banwatch/kafka-$version}"
state="$cache/run"
port="${KAFKA_PORT:-19092}"
cport=$((port + 1))
heap="${KAFKA_HEAP:-1g}"
# docker-compose.yml's default CLUSTER_ID
cluster_id="${KAFKA_CLUSTER_ID:-bXfWoLTiTDuaV2JhbndhdA}"

say() { printf '%s\n' "$*"; }
die() { printf 'kafka: %s\n' "$*" >&2; exit 1; }

running_pid() {
  [ -f "$state/pid" ] || return 1
  pid="$(cat "$state/pid")"
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

install_missing() {
  need=""
  command -v java >/dev/null 2>&1 || need="$need openjdk-17-jre-headless"
  if [ -z "${KAFKA_LIBS:-}" ] && [ ! -f "$cache/lib/kafka_2.13-$version.jar" ]; then
    command -v mvn >/dev/null 2>&1 || need="$need maven"
  fi
  [ -z "$need" ] && return 0
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
}

resolve_libs() {
  if [ -n "${KAFKA_LIBS:-}" ]; then
    [ -n "$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null)" ] \
      || die "KAFKA_LIBS=$KAFKA_LIBS holds no kafka_2.13-*.jar"
    lib="$KAFKA_LIBS"
    return 0
  fi
  lib="$cache/lib"
  [ -f "$lib/kafka_2.13-$version.jar" ] && return 0
  say "kafka: resolving Apache Kafka $version from Maven Central into $lib (once)" >&2
  rm -rf "$lib.tmp"
  mvn -q -B -U -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$lib.tmp" >"$cache/mvn.log" 2>&1 \
    || die "cannot resolve the jars (see $cache/mvn.log; is Maven Central reachable?); \
set KAFKA_LIBS to the libs/ dir of an unpacked kafka_2.13-$version.tgz instead"
  rm -rf "$lib"
  mv "$lib.tmp" "$lib"
}

wait_port() {
  # $1 pid, $2 seconds
  python3 - "$port" "$1" "$2" <<'PY'
import os, socket, sys, time
port, pid, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("kafka: the broker exited during start")
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.3)
sys.exit(f"kafka: port {port} not answering after {limit:.0f} s")
PY
}

start() {
  if pid="$(running_pid)"; then
    say "bootstrap: $(cat "$state/bootstrap")"
    say "pid: $pid"
    return 0
  fi
  mkdir -p "$cache" "$state"
  install_missing
  resolve_libs
  logdir="${KAFKA_LOG_DIR:-}"
  if [ -z "$logdir" ]; then
    logdir="$(mktemp -d "${TMPDIR:-/tmp}/banwatch-kafka.XXXXXX")"
  fi
  mkdir -p "$logdir"
  # docker-compose.yml's `kafka` environment, one listener on loopback for clients
  cat >"$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$logdir
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$state/log4j.properties" <<LOG4J
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$state/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
LOG4J
  log4j="-Dlog4j.configuration=file:$state/log4j.properties"
  # a static controller quorum (controller.quorum.voters), so no --standalone;
  # --ignore-formatted lets a given KAFKA_LOG_DIR be reused
  java "$log4j" -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$state/server.properties" --ignore-formatted >"$state/format.log" 2>&1 \
    || die "formatting $logdir failed: $(tail -n 3 "$state/format.log")"
  # shellcheck disable=SC2086
  nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "$log4j" -Dkafka.logs.dir="$state" \
    -cp "$lib/*" kafka.Kafka "$state/server.properties" >"$state/stdout.log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$state/pid"
  printf '127.0.0.1:%s\n' "$port" >"$state/bootstrap"
  printf '%s\n' "$logdir" >"$state/logdir"
  if ! wait_port "$pid" 120; then
    kill "$pid" 2>/dev/null || true
    die "not started; see $state/server.log and $state/stdout.log"
  fi
  say "bootstrap: 127.0.0.1:$port"
  say "pid: $pid"
  say "log dir: $logdir"
}

stop() {
  pid="$(running_pid)" || { say "kafka: not running"; return 0; }
  kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do
    sleep 0.5
    i=$((i + 1))
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$state/pid"
  say "kafka: stopped (log dir kept: $(cat "$state/logdir" 2>/dev/null))"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status)
    if pid="$(running_pid)"; then
      say "bootstrap: $(cat "$state/bootstrap")"
      say "pid: $pid"
    else
      say "kafka: not running"
      exit 1
    fi
    ;;
  *) die "usage: run.sh [start|stop|status]" ;;
esac
