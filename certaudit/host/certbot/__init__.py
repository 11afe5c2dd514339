"""What certbot itself does with a host's renewal conf, its interval, its hooks and its log."""
