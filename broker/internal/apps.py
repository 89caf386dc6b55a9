"""Platform API: apps, installations, suspension."""

from __future__ import annotations
