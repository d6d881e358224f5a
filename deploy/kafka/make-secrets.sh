#!/bin/sh
# Certificates and passwords for the SASL_SSL overlay (docker-compose.sasl.yml), made with
# openssl only: a private CA, the broker's certificate for the names `kafka` and `localhost`
# (PKCS12 keystore for the broker, PEM CA for the clients), a JAAS file with one user for the
# admin tools and one for banwatch (SASL/PLAIN, only ever inside TLS), and the environment
# file that gives banwatch's workers and console their credentials.
#
#   deploy/kafka/make-secrets.sh [DIR]      (DIR: deploy/kafka/secrets)
#
# Refuses to overwrite an existing DIR. The broker runs as uid 1000 in its container and
# reads the files through a bind mount: they are world-readable, so keep DIR on a host only
# operators log in to, or `chown -R 1000 DIR && chmod -R go-rwx DIR`. banwatch.env is read
# by docker compose itself and stays private (0600). Certificates are valid for 825 days.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/secrets}"
if [ -e "$dir/ca.pem" ]; then
  echo "make-secrets: $dir already holds secrets; remove it first to make new ones" >&2
  exit 1
fi
mkdir -p "$dir"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

password() { openssl rand -hex 24; }
store_password="$(password)"
admin_password="$(password)"
banwatch_password="$(password)"

openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 825 \
  -subj "/CN=banwatch Kafka CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=kafka" \
  -keyout "$tmp/kafka.key" -out "$tmp/kafka.csr" 2>/dev/null
printf 'subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
  > "$tmp/ext.cnf"
openssl x509 -req -sha256 -days 825 -in "$tmp/kafka.csr" -CA "$dir/ca.pem" \
  -CAkey "$dir/ca.key" -CAcreateserial -extfile "$tmp/ext.cnf" -out "$dir/kafka.pem" 2>/dev/null
rm -f "$dir/ca.srl"
openssl pkcs12 -export -name kafka -in "$dir/kafka.pem" -inkey "$tmp/kafka.key" \
  -certfile "$dir/ca.pem" -passout "pass:$store_password" -out "$dir/kafka.keystore.p12"
printf '%s' "$store_password" > "$dir/keystore_creds"

cat > "$dir/kafka_server_jaas.conf" <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="admin"
  password="$admin_password"
  user_admin="$admin_password"
  user_banwatch="$banwatch_password";
};
JAAS

cat > "$dir/client.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_password";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.pem
PROPS

cat > "$dir/banwatch.env" <<ENV
BANWATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL
BANWATCH_KAFKA_SASL_MECHANISM=PLAIN
BANWATCH_KAFKA_SASL_USERNAME=banwatch
BANWATCH_KAFKA_SASL_PASSWORD=$banwatch_password
BANWATCH_KAFKA_SSL_CAFILE=/etc/banwatch/kafka-ca.pem
ENV

# What the broker (uid 1000) and banwatch (uid 10001) read through bind mounts.
chmod 755 "$dir"
chmod 644 "$dir/ca.pem" "$dir/kafka.pem" "$dir/kafka.keystore.p12" "$dir/keystore_creds" \
  "$dir/kafka_server_jaas.conf" "$dir/client.properties"
echo "make-secrets: wrote $dir (CA, broker keystore, JAAS, client.properties, banwatch.env)"
