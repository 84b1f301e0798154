"""OAuth 2.0 token endpoint (JWT bearer, client credentials, username-password, refresh token) and
SOAP ``login()``, with Salesforce's response and error shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml

from . import ids
from .http import Request, Response, Router

if TYPE_CHECKING:
    from .app import EmulatorApp

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SOAP_NS = "{http://schemas.xmlsoap.org/soap/envelope/}"


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return Response(status, {"error": error, "error_description": description})


class Auth:
    def __init__(self, app: EmulatorApp):
        self.app = app
        self._public_key = None

    # -- shared ----------------------------------------------------------------------------------

    def _success(self, user_id: str, client_id: str, *, refresh: bool = False) -> Response:
        app = self.app
        token = app.issue_token(user_id, client_id)
        issued_at = str(int(time.time() * 1000))
        identity = f"{app.base_url}/id/{ids.ORG_ID}/{user_id}"
        signature = base64.b64encode(
            hmac.new(app.config["client_secret"].encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        body = {"access_token": token, "signature": signature, "scope": "api", "instance_url": app.base_url,
                "id": identity, "token_type": "Bearer", "issued_at": issued_at}
        if refresh:
            body["refresh_token"] = self.new_refresh_token(user_id, client_id)
        return Response(200, body)

    def new_refresh_token(self, user_id: str, client_id: str) -> str:
        token = "5Aep" + secrets.token_urlsafe(60)
        self.app.store.kv_put("refresh_token", token, {"user_id": user_id, "client_id": client_id})
        return token

    def _user_by_name(self, username: str | None) -> str | None:
        return self.app.users.get(username or "")

    def _password_ok(self, username: str, password: str) -> bool:
        cfg = self.app.config
        expected = {cfg["username"]: cfg["password"], cfg["admin_username"]: cfg["admin_password"]}.get(username)
        return expected is not None and hmac.compare_digest(expected, password)

    def _client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        cfg = self.app.config
        return (client_id == cfg["client_id"] and client_secret is not None
                and hmac.compare_digest(cfg["client_secret"], client_secret))

    # -- OAuth -----------------------------------------------------------------------------------

    def token(self, req: Request) -> Response:
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type and content_type != "application/x-www-form-urlencoded":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        form = req.form()
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error("invalid_request", "grant type is missing")
        if grant == JWT_GRANT:
            return self._jwt(form.get("assertion", ""))
        if grant == "client_credentials":
            return self._client_credentials(req, form)
        if grant == "password":
            return self._password(form)
        if grant == "refresh_token":
            return self._refresh(form)
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def _jwt(self, assertion: str) -> Response:
        import jwt  # PyJWT: imported here so the emulator starts without it when JWT is unused

        if self._public_key is None:
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(self.app.credentials.jwt_certificate.read_bytes())
            self._public_key = cert.public_key()
        try:
            claims = jwt.decode(assertion, self._public_key, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "invalid assertion")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.app.config["client_id"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        audiences = {self.app.base_url, "https://login.salesforce.com", "https://test.salesforce.com"}
        aud = claims.get("aud")
        aud_values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in aud_values):
            return _oauth_error("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        try:
            expiry = float(exp)  # Salesforce accepts a numeric string, which simple-salesforce sends
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expiry < time.time():
            return _oauth_error("invalid_grant", "expired authorization code")
        user = self._user_by_name(claims.get("sub"))
        if user is None:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._success(user, claims["iss"])

    def _client_credentials(self, req: Request, form: dict[str, str]) -> Response:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = req.header("authorization") or ""
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.app.config["client_id"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not self._client_ok(client_id, client_secret):
            return _oauth_error("invalid_client", "invalid client credentials")
        return self._success(self.app.integration_user_id, client_id)

    def _password(self, form: dict[str, str]) -> Response:
        client_id = form.get("client_id")
        if client_id != self.app.config["client_id"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not self._client_ok(client_id, form.get("client_secret")):
            return _oauth_error("invalid_client", "invalid client credentials")
        username = form.get("username", "")
        if not self._password_ok(username, form.get("password", "")):
            return _oauth_error("invalid_grant", "authentication failure")
        return self._success(self.app.users[username], client_id)

    def _refresh(self, form: dict[str, str]) -> Response:
        entry = self.app.store.kv_get("refresh_token", form.get("refresh_token", ""))
        if not isinstance(entry, dict):
            return _oauth_error("invalid_grant", "expired access/refresh token")
        if form.get("client_id") != entry["client_id"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") is not None and not self._client_ok(form.get("client_id"),
                                                                         form.get("client_secret")):
            return _oauth_error("invalid_client", "invalid client credentials")
        return self._success(entry["user_id"], entry["client_id"])

    # -- SOAP login ------------------------------------------------------------------------------

    def soap_login(self, req: Request) -> Response:
        version = req.match["version"]
        try:
            root = parse_xml(req.body)  # defusedxml: no entity expansion or external references from a body
        except (ParseError, DefusedXmlException):
            return _soap_fault("INVALID_REQUEST", "Unable to parse the SOAP request")
        username = password = None
        for el in root.iter():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "username":
                username = (el.text or "").strip()
            elif tag == "password":
                password = el.text or ""
        if float(version) >= 65.0:
            return _soap_fault("UNSUPPORTED_API_VERSION",
                               f"login() is not available in API version {version}; use OAuth")
        if not username or password is None or not self._password_ok(username, password):
            return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
        user_id = self.app.users[username]
        token = self.app.issue_token(user_id, "soap")
        base = self.app.base_url
        org15 = ids.ORG_ID[:15]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>{base}/services/Soap/m/{version}/{org15}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{base}/services/Soap/u/{version}/{org15}</serverUrl>"
            f"<sessionId>{escape(token)}</sessionId><userId>{user_id}</userId>"
            "<userInfo><accessibilityMode>false</accessibilityMode><chatterExternal>false</chatterExternal>"
            "<currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>"
            "<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>"
            "<orgDefaultCurrencyLocale>en_US</orgDefaultCurrencyLocale>"
            "<orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>"
            "<orgHasPersonAccounts>false</orgHasPersonAccounts>"
            f"<organizationId>{ids.ORG_ID}</organizationId><organizationMultiCurrency>false"
            "</organizationMultiCurrency><organizationName>Local Emulator</organizationName>"
            f"<profileId>00e000000000001AAA</profileId><roleId xsi:nil=\"true\"/>"
            f"<sessionSecondsValid>{self.app.settings.token_ttl_seconds}</sessionSecondsValid>"
            f"<userEmail>{escape(username)}</userEmail><userFullName>Local User</userFullName>"
            f"<userId>{user_id}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale>"
            f"<userName>{escape(username)}</userName><userTimeZone>Etc/UTC</userTimeZone>"
            "<userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(200, body, content_type="text/xml;charset=UTF-8")


def _soap_fault(code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring><detail>"
        '<sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}"
        "</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(500, body, content_type="text/xml;charset=UTF-8")


def register(router: Router, app: EmulatorApp) -> None:
    auth = Auth(app)
    app.auth = auth  # type: ignore[attr-defined]
    router.add("POST", r"/services/oauth2/token", auth.token, api=False)
    router.add("POST", r"/services/Soap/u/(?P<version>\d{2}\.\d)(?:/[^/]*)?", auth.soap_login, api=False)
