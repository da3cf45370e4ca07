#!/bin/sh
# First start: a cluster owned by POSTGRES_USER, password auth over TCP, and POSTGRES_DB.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    # UTF-8 whatever the container's locale: with SQL_ASCII psycopg returns bytes.
    initdb -U "$POSTGRES_USER" -E UTF8 --locale=C.UTF-8 --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -w start -o "-c listen_addresses=''" >/dev/null
    createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -w stop >/dev/null
fi
exec postgres -c listen_addresses='*'
