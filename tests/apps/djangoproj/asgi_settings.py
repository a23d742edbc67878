"""The project's settings for its ASGI entry point (``asgi.py``): the WSGI
ones, with the async views' URLs and an in-memory channel layer for the
Channels WebSocket consumer (its groups span one worker process)."""

from djangoproj.settings import (  # noqa: F401 - the settings Django reads from here
    ALLOWED_HOSTS,
    DATA_UPLOAD_MAX_MEMORY_SIZE,
    DATABASES,
    DEBUG,
    INSTALLED_APPS,
    LOGGING_CONFIG,
    MIDDLEWARE,
    SECRET_KEY,
    USE_TZ,
)

ROOT_URLCONF = "djangoproj.asgi_urls"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
