"""Minimal Django settings for the integration tests (no database)."""

SECRET_KEY = "integration-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoproj.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
USE_TZ = True
LOGGING_CONFIG = None
