"""Five checks of one's own, written the testinfra way: the bench runs them with certaudit's `host` and with testinfra's."""
