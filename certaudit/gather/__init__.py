"""How facts reach certaudit: the transport to a host, the probe that runs there, and TLS endpoints.

Nothing here judges: it returns what a host answered, bounded in size and time, for host/ to read.
"""
