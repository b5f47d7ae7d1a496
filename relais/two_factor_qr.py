"""Showing a new TOTP secret to the person enrolling: its ``otpauth://`` URI, that URI as a QR code
drawn here (segno, SVG; no external service), and the key in groups to type by hand. The secret
itself, its storage and the codes are in :mod:`relais.two_factor`."""

from __future__ import annotations

import html
import io

import pyotp
import segno

from relais.users import User

ISSUER = "Relais"


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str, title: str) -> str:
    """The QR code as an inline SVG element: paths and presentation attributes only, no style
    attribute or element (the pages' Content-Security-Policy allows no inline style)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, svgns=True, omitsize=True, border=4, scale=1,
                                    dark="#000", light="#fff", svgclass="qr", lineclass=None, title=title)
    return out.getvalue().decode("utf-8").replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def grouped(secret: str) -> str:
    """The key as people type it into an app: groups of four."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
