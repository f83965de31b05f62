#!/usr/bin/env bash
# Writes the local-only secret files docker/compose.yml reads (docker/secrets/, ignored by git):
# a random PostgreSQL password shared by postgres and appointments, and booking placeholders.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
if [[ -e "$dir/postgres.env" ]]; then
    echo "make-secrets: $dir exists; remove it to make new secrets" >&2
    exit 0
fi
pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
umask 077
printf 'POSTGRES_PASSWORD=%s\n' "$pw" >"$dir/postgres.env"
cat >"$dir/appointments.env" <<EOT
TAINA_DATABASE_URL=postgresql://taina:${pw}@postgres:5432/taina
TAINA_BOOKING_URL=http://booking.example.invalid
TAINA_BOOKING_TOKEN_URL=http://booking.example.invalid/oauth/token
TAINA_BOOKING_CLIENT_ID=local
TAINA_BOOKING_CLIENT_SECRET=change-me
EOT
echo "make-secrets: wrote $dir/postgres.env and $dir/appointments.env" >&2
