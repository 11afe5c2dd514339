"""What the three jobs add to a run: the pre-deploy gate, the renewal drill, the Prometheus textfile
and sharding."""
