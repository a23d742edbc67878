"""The demos' page frame: one style, a navigation bar, no external assets."""

from __future__ import annotations

import html

__all__ = ["page"]

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 50rem;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
td { border-top: 1px solid #ddd; padding: 0.2rem 0.5rem; vertical-align: top;
     word-break: break-all; }
td:first-child { white-space: nowrap; font-weight: 600; word-break: normal; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


LINKS = (("/", "Home"), ("/environ", "Environ"), ("/form", "Upload"), ("/stream", "Stream"))


def page(
    title: str, body: str, script_name: str, links: tuple[tuple[str, str], ...] = LINKS
) -> bytes:
    nav = "".join(
        f'<a href="{html.escape(script_name)}{href}">{label}</a>' for href, label in links
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><nav>{nav}</nav><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    ).encode()
