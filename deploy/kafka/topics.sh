#!/bin/sh
# One-shot creation of banwatch's topics for docker-compose.yml (the `topics` service), run with
# the Kafka image's own kafka-topics.sh so that it needs nothing of banwatch's.
#
# The table is streams/kafka/topics.py's SPECS (names, partitions, configs): retention there is a
# privacy decision, so it must be the same here. tests/ops/test_compose.py runs this script and
# fails when the two differ. Topics that exist are left exactly as they are (--if-not-exists).
#
# Environment: KAFKA_BOOTSTRAP (kafka:9092), BANWATCH_TOPIC_PREFIX (empty),
# KAFKA_COMMAND_CONFIG (a client properties file, for SASL_SSL), REPLICATION_FACTOR (1),
# KAFKA_TOPICS_BIN (/opt/kafka/bin/kafka-topics.sh).
set -eu

bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
prefix="${BANWATCH_TOPIC_PREFIX:-}"
replication="${REPLICATION_FACTOR:-1}"
topics_bin="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

# name, partitions, then topic configs
while read -r name partitions configs; do
  [ -n "$name" ] || continue
  set -- --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$prefix$name" --partitions "$partitions" --replication-factor "$replication"
  if [ -n "${KAFKA_COMMAND_CONFIG:-}" ]; then
    set -- "$@" --command-config "$KAFKA_COMMAND_CONFIG"
  fi
  for config in $configs; do
    set -- "$@" --config "$config"
  done
  "$topics_bin" "$@"
  echo "topic $prefix$name: ready"
done <<'TOPICS'
contact-bans 4 cleanup.policy=compact
positions 4 cleanup.policy=delete retention.ms=259200000 segment.ms=3600000
patrol-positions 4 cleanup.policy=delete retention.ms=86400000 segment.ms=3600000
incidents 4 cleanup.policy=delete retention.ms=604800000 segment.ms=21600000
alert-acks 4 cleanup.policy=delete retention.ms=2592000000 segment.ms=86400000
alerts 4 cleanup.policy=compact,delete retention.ms=2592000000 segment.ms=86400000
patrol-tasks 4 cleanup.policy=delete retention.ms=604800000 segment.ms=21600000
dead-letters 4 cleanup.policy=delete retention.ms=604800000 segment.ms=21600000
audit 4 cleanup.policy=delete retention.ms=-1
task-updates 4 cleanup.policy=delete retention.ms=604800000 segment.ms=21600000
protected-notifications 4 cleanup.policy=delete retention.ms=604800000 segment.ms=21600000
TOPICS
