"""The WeCom sidebar's configuration: per tenant, its WeCom self-built app and who may read as what.

Part of an environment's config (``cdk.json`` ``sidebar``) and of the sidebar function's environment
(``SIDEBAR_JSON``): the same model in both, so nothing drifts. Secrets are not here: the app's corp
secret is ``aftersync/<env>/wecom-app/<tenant>`` and the session signing keys
``aftersync/<env>/sidebar/signing`` (``shared.constants``).

- ``tenants.<tenant>.corp_id`` / ``agent_id``: the enterprise (企业ID, ``ww…``) and its self-built app
  (自建应用 AgentId) the sidebar runs as;
- ``tenants.<tenant>.users``: WeCom user id -> reader role (``agent``, ``supervisor``); a WeCom user not
  listed gets a 403 page;
- ``api_base``: the WeCom server API (gettoken, auth/getuserinfo, ticket/get); ``oauth_base``: where the
  OAuth authorize page is; ``jssdk_scripts``: the JS-SDK's script URLs (WeCom's, or the sandbox's fake);
- ``session_minutes``: how long a page's session lasts (the page is re-opened from WeCom after that);
- ``public_url``: the page's origin and base path as WeCom opens it (a custom domain that is the app's
  trusted domain, ``https://sidebar.example.com``); empty: taken from the request (``Host`` and stage).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SidebarRole = Literal["agent", "supervisor"]
WeComUserId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
HttpsBase = Annotated[str, Field(pattern=r"^https?://[^/?#\s]+$")]
DEFAULT_JSSDK_SCRIPTS = (
    "https://res.wx.qq.com/open/js/jweixin-1.2.0.js",
    "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js",
)
MAX_CONFIG_BYTES = 2048  # of the function's environment (Lambda's whole environment: 4 KB)


class SidebarTenant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    corp_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,64}$")]
    agent_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    users: dict[WeComUserId, SidebarRole] = {}


class SidebarConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenants: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")], SidebarTenant] = {}
    api_base: HttpsBase = "https://qyapi.weixin.qq.com"
    oauth_base: HttpsBase = "https://open.weixin.qq.com"
    jssdk_scripts: Annotated[
        tuple[Annotated[str, Field(pattern=r"^https?://[^\s\"'<>]+$")], ...], Field(min_length=1)
    ] = DEFAULT_JSSDK_SCRIPTS
    session_minutes: Annotated[int, Field(ge=1, le=15)] = 12
    public_url: Annotated[str, Field(pattern=r"^https?://[^?#\s]+[^/?#\s]$")] | None = None

    @model_validator(mode="after")
    def _fits(self) -> SidebarConfig:
        if len(self.model_dump_json(exclude_defaults=True)) > MAX_CONFIG_BYTES:
            raise ValueError(f"sidebar: over {MAX_CONFIG_BYTES} bytes do not fit the sidebar function's environment")
        return self

    def https_only(self) -> list[str]:
        """The URLs that are not https (allowed in the sandbox only, to its fakes on loopback)."""
        urls = [self.api_base, self.oauth_base, *self.jssdk_scripts, *([self.public_url] if self.public_url else [])]
        return [u for u in urls if not u.startswith("https://")]
