"""Alerts to the operator's webhooks (``alerts.webhooks``): a breaker trip, a halt, a level change to LIMITED or
EMERGENCY, a database outage and its end, the daemon's stop.

``alert`` maps an event to an alert (pure), ``delivery`` POSTs one alert to one webhook with retries, ``dispatcher``
takes the events (from the bus, or from the daemon) and sends and stores every alert without holding trading up,
``webhook`` keeps each URL secret, ``settings`` declares the section. README, "Alerts"; docs/ARCHITECTURE.md,
"Alerts".
"""
