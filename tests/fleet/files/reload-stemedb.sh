#!/bin/bash
# The runbook's deploy hook: install the renewed lineage where stemedb-api reads it, then reload.
set -eu
install -o stemedb -g stemedb -m 0644 "$RENEWED_LINEAGE/fullchain.pem" /etc/stemedb/tls/cert.pem
install -o stemedb -g stemedb -m 0600 "$RENEWED_LINEAGE/privkey.pem" /etc/stemedb/tls/key.pem
systemctl reload stemedb-api
journalctl -u stemedb-api -n 5 | grep -i "certificate reloaded" || \
  echo "WARNING: Certificate reload may have failed"
