"""What stands between a request and the engine: auth, rate limits, load shedding, body limits,
security headers."""
