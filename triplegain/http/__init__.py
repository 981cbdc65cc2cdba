"""The daemon's HTTP surface (``triplegain run --http HOST:PORT``): a REST API, a live dashboard, ``/healthz`` and
``/metrics``, served by uvicorn inside the daemon's event loop (docs/ARCHITECTURE.md, "HTTP").

Handlers only await: the database through a bounded number of reads at once (``context.HttpContext.reading``), the
daemon's in-memory status through a snapshot (``live``). Commands go through ``coordinator.controls``. Nothing is
imported here: ``config`` reads ``http.settings`` without loading FastAPI (``http.server`` does, only when HTTP is
on).
"""
