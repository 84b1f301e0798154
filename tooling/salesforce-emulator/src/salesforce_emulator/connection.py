"""Client-side plumbing for talking to the emulator: verified HTTPS sessions and tokens.

Used by the test suite, the demo and the benchmarks, so each connects the same way.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


def https_session(info: dict) -> requests.Session:
    """A session that verifies the emulator's certificate against its CA bundle.

    ``trust_env`` is off because requests lets REQUESTS_CA_BUNDLE (set on many machines) override
    ``session.verify``; verification itself stays on.
    """
    session = requests.Session()
    session.verify = info["ca_bundle"]
    session.trust_env = False
    return session


def fetch_token(info: dict, session: requests.Session) -> str:
    """An access token for the integration user (client credentials flow)."""
    resp = session.post(f"{info['login_url']}/services/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": info["client_id"], "client_secret": info["client_secret"]})
    resp.raise_for_status()
    return resp.json()["access_token"]


class LoginHostRedirect(HTTPAdapter):
    """Sends simple-salesforce's fixed ``https://<domain>.salesforce.com`` login calls to the emulator.

    simple-salesforce builds login URLs from a domain name only, so its credential-based constructors
    can reach a local server only through the session they are given. TLS is still verified.
    """

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def send(self, request, **kwargs):  # type: ignore[override]
        request.url = self.base_url + request.url.split(".salesforce.com", 1)[1]
        return super().send(request, **kwargs)


def redirected_session(info: dict, domains: tuple[str, ...] = ("login", "test")) -> requests.Session:
    """An https_session whose ``https://<domain>.salesforce.com`` requests go to the emulator."""
    session = https_session(info)
    for domain in domains:
        session.mount(f"https://{domain}.salesforce.com", LoginHostRedirect(info["login_url"]))
    return session
