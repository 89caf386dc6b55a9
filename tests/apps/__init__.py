"""Apps: registration, grants and installations, the platform API, the demo apps (broker/apps, consent)."""
