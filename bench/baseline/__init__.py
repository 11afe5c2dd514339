"""The bench's baseline: the runbook's prevention checks as a plain, idiomatic testinfra suite."""
