"""What host content means: the typed snapshot (facts) and the readers of certificates, certbot's
files, cron, shell, metrics and alert rules. Pure functions: no connection, no pytest."""
