#!/bin/sh
# Rendered by `hux render`. Run by the postgres image on an empty data volume only: the role Grafana's
# "Bot database" datasource logs in with. It can read tokens, decisions and call_checks (the bot grants that
# when it migrates) and nothing else: no chat texts. On an existing volume, run these lines by hand.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$HUX_GRAFANA_DB_PASSWORD" -v db="$POSTGRES_DB" -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
CREATE ROLE hux_grafana LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO hux_grafana;
GRANT USAGE ON SCHEMA public TO hux_grafana;
SQL
