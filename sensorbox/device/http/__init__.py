"""The device's HTTP server (server.py): limits, JSON errors, authentication, and the route modules."""
