"""`dumbwaiter migrate`: uWSGI and gunicorn configurations as a
dumbwaiter.toml that the config loader reads."""

from __future__ import annotations

import pathlib

import pytest

from dumbwaiter.configfile import load
from dumbwaiter.migrate import access_format, gunicorn_args, read_ini, translate

SAMPLES = pathlib.Path(__file__).parents[1] / "apps" / "migrate"


def loaded(tmp: pathlib.Path, text: str) -> tuple[str | None, object]:
    (tmp / "dumbwaiter.toml").write_text(text)
    result = load({}, None, {}, str(tmp / "dumbwaiter.toml"))
    return result.spec, result.config


def skipped(translation: object) -> dict[str, str]:
    return {source.split(": ", 1)[1]: reason for source, reason in translation.untranslated}  # type: ignore[attr-defined]


def test_a_django_uwsgi_ini(tmp_path: pathlib.Path) -> None:
    [django] = translate(str(SAMPLES / "django-uwsgi.ini"), {})
    spec, config = loaded(tmp_path, django.render())
    assert spec == "mysite.wsgi:application"
    assert config.uwsgi == ["unix:/run/mysite/uwsgi.sock"]  # type: ignore[attr-defined]
    expected = {
        "chdir": "/srv/mysite",
        "workers": 2,  # cheaper
        "max_workers": 8,  # processes
        "threads": 4,
        "socket_mode": 0o660,
        "socket_owner": "mysite",
        "socket_group": "www-data",
        "max_header_bytes": 32768,
        "spool_threshold": 65536,
        "max_requests": 5000,
        "max_requests_jitter": 500,
        "user": "mysite",
        "group": "mysite",
        "pid": "/run/mysite/uwsgi.pid",
        "error_log": "/var/log/mysite/uwsgi.log",
        "status": "127.0.0.1:9191",
    }
    assert {name: getattr(config, name) for name in expected} == expected
    reasons = skipped(django)
    assert "front server" in reasons["static-map = /static=/srv/mysite/static"]
    assert "front server" in reasons["static-map = /media=/srv/mysite/media"]
    assert (
        "--static /media/=/srv/mysite/media prints"
        in reasons["static-map = /media=/srv/mysite/media"]
    )
    assert "minimum" in reasons["cheaper-initial = 2"]
    assert "cheaper = 2" not in reasons
    assert "always removes" in reasons["vacuum = true"]
    assert "environment" in reasons["env = DJANGO_SETTINGS_MODULE=mysite.settings"]
    text = django.render()
    line = next(line for line in text.splitlines() if line.startswith("max_workers = 8 "))
    assert line.endswith(f"# {SAMPLES / 'django-uwsgi.ini'}: cheaper = 2 (up to processes)")


def test_a_flask_uwsgi_ini(tmp_path: pathlib.Path) -> None:
    [flask] = translate(str(SAMPLES / "flask-uwsgi.ini"), {})
    spec, config = loaded(tmp_path, flask.render())
    assert spec == "app:app"
    expected = {
        "workers": 2,
        "threads": 2,
        "uwsgi": ["127.0.0.1:3031"],
        "http": ["127.0.0.1:9090"],
        "timeout": 30.0,
        "max_rss": 200,
        "max_lifetime": 3600.0,
        "max_lifetime_jitter": 60.0,
        "max_body": 10 * 1024 * 1024,
        "backlog": 128,
    }
    assert {name: getattr(config, name) for name in expected} == expected
    assert set(skipped(flask)) == {"lazy-apps = true", "single-interpreter = true"}


def test_a_gunicorn_conf_with_hooks(tmp_path: pathlib.Path) -> None:
    path = str(SAMPLES / "gunicorn.conf.py")
    [gunicorn] = translate(path, {})
    spec, config = loaded(tmp_path, gunicorn.render())
    assert spec is None  # gunicorn takes the app on its command line
    expected = {
        "http": ["unix:/run/shop/gunicorn.sock", "127.0.0.1:8000"],
        "workers": 3,
        "threads": 4,
        "timeout": 60.0,
        "graceful_timeout": 20.0,
        "keepalive_timeout": 5.0,
        "max_requests": 1000,
        "max_requests_jitter": 50,
        "access_log": "-",
        "access_log_format": "combined",
        "error_log": "/var/log/shop/error.log",
        "log_level": "warning",
        "forwarded_allow_ips": ["10.0.0.1", "10.0.0.2"],
        "preload": True,
        "hooks": path,  # the same module: its functions are the hooks
    }
    assert {name: getattr(config, name) for name in expected} == expected
    assert "its child_exit, post_fork" in gunicorn.render()
    assert set(skipped(gunicorn)) == {"worker_class = 'gthread'", "proc_name = 'shop'"}


def test_the_environment_forms(tmp_path: pathlib.Path) -> None:
    environ = {
        "UWSGI_SOCKET": "/run/a.sock",
        "UWSGI_PROCESSES": "4",
        "UWSGI_MODULE": "proj.wsgi",
        "GUNICORN_CMD_ARGS": "--bind 127.0.0.1:9000 -w 3 --timeout 20 --preload --spew",
    }
    uwsgi, gunicorn = translate(None, environ)
    spec, config = loaded(tmp_path, uwsgi.render())
    assert (spec, config.uwsgi, config.workers) == (
        "proj.wsgi:application",
        ["unix:/run/a.sock"],
        4,
    )  # type: ignore[attr-defined]
    _, config = loaded(tmp_path, gunicorn.render())
    assert (config.http, config.workers, config.timeout, config.preload) == (  # type: ignore[attr-defined]
        ["127.0.0.1:9000"],
        3,
        20.0,
        True,
    )
    assert "(not read) = '--spew'" in gunicorn.render()


def test_ini_reading_keeps_repeated_keys_and_skips_other_sections() -> None:
    text = (
        "[other]\nsocket = x\n[uwsgi]\n# note\n; note\nsocket = /a\nsocket=/b\nmax_requests = 3\n"
    )
    assert read_ini(text) == [("socket", "/a"), ("socket", "/b"), ("max-requests", "3")]


@pytest.mark.parametrize(
    ("gunicorn", "ours"),
    [
        ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"', "combined"),
        ("%(h)s %(s)s %(L)s {x}", "{remote_addr} {status} {request_time} {{x}}"),
        ("%(h)s %({x-forwarded-for}i)s", None),
    ],
)
def test_access_log_formats(gunicorn: str, ours: str | None) -> None:
    assert access_format(gunicorn) == ours


def test_unknown_options_in_gunicorn_args_are_listed() -> None:
    assert gunicorn_args("-b :80 -b unix:/x --threads 2 --weird") == {
        "bind": [":80", "unix:/x"],
        "threads": 2,
        "(not read)": "--weird",
    }
