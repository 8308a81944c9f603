"""The device's HTTP server (Microdot): limits, JSON errors, authentication, and the API routes."""
