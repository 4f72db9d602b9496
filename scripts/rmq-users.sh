#!/usr/bin/env bash
# Broker users of the dashboard on a running RabbitMQ (SECURITY.md, "Re-ingest"):
#
#   - REINGEST_RMQ_USERNAME (default pacer-dashboard-reingest) publishes re-ingested messages. It
#     may write only to the exchanges of REINGEST_EXCHANGES, and configure and read nothing: even
#     a bug in the dashboard's own checks cannot make it publish to Celery's or the dashboard's
#     exchanges. Its password is generated once and kept in $RUN_DIR/rabbitmq/reingest-password
#     (mode 600), or taken from REINGEST_RMQ_PASSWORD.
#   - the main dashboard user (RMQ_USERNAME) loses the administrator tag: `management` is all it
#     needs (the /system page and the tests read queue figures of its own vhost).
#
# Local broker (scripts/services.sh start runs this once the broker is up): talks to the node of
# $RUN_DIR with rabbitmqctl, in the same environment as the server, and appends the settings to
# $RUN_DIR/env. Elsewhere (e.g. a compose one-shot service next to the broker): set
# RABBITMQCTL="rabbitmqctl -n rabbit@rabbitmq" (and the Erlang cookie) and RMQ_USERS_ENV_FILE=""
# to write no env file.
#
# REINGEST_EXCHANGES: comma-separated PACER exchanges; default: the demo PACER's (pacer/demo).
# Names that can never be re-ingest targets are refused here as at the dashboard's start-up.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
RMQ_DIR=$RUN_DIR/rabbitmq
RMQ_PORT=${RMQ_PORT:-25672}
ERL_EPMD_PORT=${ERL_EPMD_PORT:-25675}
MAIN_USER=${RMQ_USERNAME:-pacer-dashboard}
USER_NAME=${REINGEST_RMQ_USERNAME:-pacer-dashboard-reingest}
VHOST=${RMQ_VHOST:-/}
DEMO_EXCHANGES=dataset-ingest-exchange,internal-dataset-exchange,user-sync-exchange,proposal-sync-exchange,investigation-ops-exchange
EXCHANGES=${REINGEST_EXCHANGES-$DEMO_EXCHANGES}
ENV_FILE=${RMQ_USERS_ENV_FILE-$RUN_DIR/env}

log() { printf '[rmq-users] %s\n' "$*" >&2; }
die() { printf '[rmq-users] error: %s\n' "$*" >&2; exit 1; }

if [ -n "${RABBITMQCTL:-}" ]; then
  read -r -a CTL <<<"$RABBITMQCTL"
else
  # The same node, cookie and epmd as scripts/services.sh start_rabbitmq gives the server.
  CTL=(env HOME="$RMQ_DIR/home" RABBITMQ_NODENAME="pacer-dashboard-$RMQ_PORT@localhost"
    ERL_EPMD_PORT="$ERL_EPMD_PORT" /usr/lib/rabbitmq/bin/rabbitmqctl)
fi
ctl() { "${CTL[@]}" --quiet "$@" >/dev/null; }

# The write permission: exactly the listed names (regex-escaped, anchored); never a forbidden one.
regex=""
IFS=',' read -r -a names <<<"$EXCHANGES"
kept=()
for raw in "${names[@]}"; do
  name=$(printf '%s' "$raw" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
  [ -n "$name" ] || continue
  lower=$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')
  case "$lower" in
    amq.* | celery* | *pidbox* | "${DASHBOARD_EXCHANGE:-dashboard-logging-exchange}" | \
      "${CELERY_QUEUE:-pacer-dashboard-tasks}")
      die "REINGEST_EXCHANGES: '$name' can never be a re-ingest target" ;;
  esac
  kept+=("$name")
  escaped=$(printf '%s' "$name" | sed 's/[][\\.^$*+?(){}|/]/\\&/g')
  regex="${regex:+$regex|}$escaped"
done
if [ -n "$regex" ]; then write="^($regex)\$"; else write='^$'; fi

if [ -n "${REINGEST_RMQ_PASSWORD:-}" ]; then
  password=$REINGEST_RMQ_PASSWORD
else
  mkdir -p "$RMQ_DIR"
  if [ ! -s "$RMQ_DIR/reingest-password" ]; then
    # Hex: a generated password never starts with '-' (token_urlsafe did 1 time in 64).
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(24))' \
      >"$RMQ_DIR/reingest-password")
  fi
  chmod 600 "$RMQ_DIR/reingest-password"
  password=$(cat "$RMQ_DIR/reingest-password")
fi

# Nothing to do when the broker already has exactly this (a restart of the same RUN_DIR).
stamp=$(printf '%s\n' "$USER_NAME" "$password" "$write" "$MAIN_USER" "$VHOST" | sha256sum | cut -c1-16)
if [ -z "${RABBITMQCTL:-}" ] && [ "$(cat "$RMQ_DIR/users.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "broker users already set up"
else
  # `--`: a password given in REINGEST_RMQ_PASSWORD may start with '-' (rabbitmqctl would read
  # it as an option and the user would silently keep its old password).
  if ctl authenticate_user -- "$USER_NAME" "$password" 2>/dev/null; then
    :
  elif ! ctl add_user -- "$USER_NAME" "$password" 2>/dev/null; then
    ctl change_password -- "$USER_NAME" "$password"
  fi
  ctl set_user_tags "$USER_NAME"
  ctl set_permissions -p "$VHOST" "$USER_NAME" '^$' "$write" '^$'
  ctl set_user_tags "$MAIN_USER" management
  [ -n "${RABBITMQCTL:-}" ] || printf '%s\n' "$stamp" >"$RMQ_DIR/users.stamp"
  log "broker user $USER_NAME may write to: ${kept[*]:-(nothing)}; $MAIN_USER is no longer an administrator"
fi

if [ -n "$ENV_FILE" ]; then
  list=$(IFS=','; printf '%s' "${kept[*]:-}")
  {
    echo "# Written by scripts/rmq-users.sh: the re-ingest allow-list and its broker user."
    echo "REINGEST_EXCHANGES=$list"
    echo "REINGEST_RMQ_USERNAME=$USER_NAME"
    echo "REINGEST_RMQ_PASSWORD='$password'"
  } >>"$ENV_FILE"
  chmod 600 "$ENV_FILE"
fi
