"""The run's proof: its metadata and evidence.json, the run directory and its signed manifest, the
HTML report, merging shards and the quarterly diff. Written from records; never judges a host."""
