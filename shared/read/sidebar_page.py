"""The sidebar page itself: one HTML document with its CSS and a little JS, in zh-CN or English.

No framework and nothing loaded from elsewhere but the WeCom JS-SDK: the page must open fast in WeCom's
webview and on a phone. Data never goes into the HTML: the script fetches the answer and puts every value
in with ``textContent`` (a ``<script>`` in an order's title is shown as text, never run). What the
script needs at start (the session, the mode, the strings) is a JSON data block whose ``<``, ``>`` and
``&`` are escaped, so no value can close it.

Every answer carries a Content-Security-Policy whose only scripts and styles are this answer's own (a
fresh nonce each time) and the JS-SDK's origins, ``connect-src 'self'``, ``frame-ancestors 'none'``
(WeCom opens the page in a webview, never in a frame), ``Cache-Control: no-store`` and
``Referrer-Policy: no-referrer`` (the URL carries an OAuth code or a screen-pop link).

Elements carry stable ``data-testid``s for the browser test: ``sidebar`` (with ``data-state``: loading,
ready, empty, expired, error), ``status``, ``customer-card``, ``customer-name``, ``customer-phone``,
``customer-email``, ``order`` (``data-source``, ``data-order-id``), ``order-source``, ``order-line``,
``warranty-badge`` (``data-eligible``, ``data-status``), ``case`` (``data-case-id``), ``case-progress``,
``case-step`` (``data-current``, ``data-status``: the code; the text is its label), ``shipment``,
``shipment-checkpoint``, ``ticket``, ``timeline``, ``timeline-entry``, ``match``.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
Mode = Literal["wecom", "phone"]

STRINGS: dict[Lang, dict[str, str]] = {
    "zh-CN": {
        "title": "客户信息",
        "loading": "正在加载…",
        "customer": "客户",
        "orders": "订单",
        "cases": "进行中的售后",
        "shipments": "物流",
        "tickets": "工单",
        "timeline": "动态",
        "none": "无",
        "in_warranty": "在保",
        "out_of_warranty": "已过保",
        "warranty_void": "保修失效",
        "warranty_unknown": "保修期未知",
        "until": "至",
        "serial": "序列号",
        "closed_cases": "已结束的售后：",
        "several": "多位客户使用此号码：",
        "not_found": "没有找到这位客户的记录。",
        "expired": "会话已过期，请重新打开侧边栏。",
        "no_contact": "请在与客户的聊天中打开侧边栏。",
        "jssdk_failed": "企业微信 JS-SDK 验证失败，请重新打开侧边栏。",
        "error": "加载失败，请稍后重试。",
        "priority": "优先级",
        "assignee": "处理人",
        "unauthorized_title": "需要重新登录",
        "unauthorized": "企业微信登录码无效、已过期或已使用。",
        "sign_in": "重新登录",
        "link_refused": "链接无效或已过期，请重新生成。",
        "reader_refused": "需要有效的读取密钥。",
        "forbidden_title": "无权查看",
        "forbidden": "你的企业微信账号未被授权查看客户信息，请联系管理员添加。",
        "unavailable_title": "企业微信暂时没有响应",
        "unavailable": "请稍后重新打开侧边栏。",
        "not_configured_title": "未配置",
        "not_configured": "此租户没有配置企业微信侧边栏。",
        "bad_request_title": "请求无效",
        "bad_phone": "号码无效。",
        "bad_request": "请求的参数无效。",
    },
    "en": {
        "title": "Customer",
        "loading": "Loading…",
        "customer": "Customer",
        "orders": "Orders",
        "cases": "Open after-sales cases",
        "shipments": "Shipments",
        "tickets": "Tickets",
        "timeline": "Timeline",
        "none": "None",
        "in_warranty": "In warranty",
        "out_of_warranty": "Out of warranty",
        "warranty_void": "Warranty void",
        "warranty_unknown": "Warranty unknown",
        "until": "until",
        "serial": "Serial",
        "closed_cases": "Closed cases: ",
        "several": "Several customers share this number:",
        "not_found": "No record of this customer.",
        "expired": "The session has expired: open the sidebar again.",
        "no_contact": "Open the sidebar from a chat with a customer.",
        "jssdk_failed": "The WeCom JS-SDK check failed: open the sidebar again.",
        "error": "Could not load; try again in a moment.",
        "priority": "priority",
        "assignee": "assignee",
        "unauthorized_title": "Sign in again",
        "unauthorized": "The WeCom sign-in code is invalid, expired or already used.",
        "sign_in": "Sign in again",
        "link_refused": "The link is invalid or has expired: make a new one.",
        "reader_refused": "A valid reader key is required.",
        "forbidden_title": "Not allowed",
        "forbidden": "Your WeCom account may not view customer data here; ask an administrator to add it.",
        "unavailable_title": "WeCom did not answer",
        "unavailable": "Open the sidebar again in a moment.",
        "not_configured_title": "Not set up",
        "not_configured": "No WeCom sidebar is set up for this tenant.",
        "bad_request_title": "Bad request",
        "bad_phone": "Not a valid phone number.",
        "bad_request": "The request's parameters are not valid.",
    },
}

_TAG = re.compile(r"^([a-zA-Z]{1,8})(?:-([a-zA-Z0-9]{1,8}))*$")


def language(query_lang: str | None, accept_language: str | None) -> Lang:
    """``lang`` (``zh-CN``, ``zh``, ``en``…) if given and known, else the first of Chinese and English in
    ``Accept-Language`` by weight, else zh-CN."""
    if query_lang:
        primary = query_lang.strip().split("-", 1)[0].lower()
        if primary in ("zh", "en"):
            return "en" if primary == "en" else "zh-CN"
    best: tuple[float, int, Lang] | None = None
    for n, part in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        if not _TAG.match(tag.strip()):
            continue
        primary = tag.strip().split("-", 1)[0].lower()
        if primary not in ("zh", "en"):
            continue
        weight = 1.0
        match = re.search(r"q=([0-9.]+)", params)
        if match:
            try:
                weight = float(match[1])
            except ValueError:
                continue
        if weight <= 0:
            continue
        candidate: tuple[float, int, Lang] = (-weight, n, "en" if primary == "en" else "zh-CN")
        best = candidate if best is None or candidate < best else best
    return best[2] if best else "zh-CN"


def nonce() -> str:
    return secrets.token_urlsafe(18)


def csp(script_nonce: str, script_urls: tuple[str, ...] = ()) -> str:
    origins = sorted({f"{u.scheme}://{u.netloc}" for u in map(urlsplit, script_urls)})
    scripts = " ".join([f"'nonce-{script_nonce}'", *origins])
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'nonce-{script_nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def headers(script_nonce: str, script_urls: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Content-Security-Policy": csp(script_nonce, script_urls),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _json_block(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left to end it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"PingFang SC","Microsoft YaHei",system-ui,sans-serif;
color:#1f2329;background:#f5f6f7}
main{max-width:640px;margin:0 auto;padding:8px}
section{background:#fff;border-radius:8px;padding:10px 12px;margin:0 0 8px}
h1{font-size:17px;margin:0 0 4px}
h2{font-size:13px;color:#646a73;margin:0 0 6px;font-weight:600}
ul,ol{list-style:none;margin:0;padding:0}
li{padding:6px 0;border-top:1px solid #eff0f1}
li:first-child{border-top:0}
.muted{color:#8f959e;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:4px 8px;align-items:baseline}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;background:#eff0f1;color:#646a73}
.source{background:#e1eaff;color:#245bdb}
.ok{background:#d9f5d6;color:#237b19}
.bad{background:#fde2e2;color:#c02a2a}
.line{margin:2px 0 0 0;font-size:13px}
.steps{display:flex;flex-wrap:wrap;gap:2px;margin-top:4px}
.steps li{border:0;padding:0 6px;font-size:12px;border-radius:10px;background:#eff0f1;color:#646a73}
.steps li[data-current=true]{background:#245bdb;color:#fff}
#status{padding:24px 12px;text-align:center;color:#646a73}
.change{font-size:12px;color:#646a73;word-break:break-all}
a{color:#245bdb}
@media (max-width:360px){body{font-size:13px}main{padding:4px}}
"""


# What the page shows for the canonical model's codes (shared.models: order, payment and fulfilment
# statuses, case kinds and statuses, tracking and ticket statuses, priorities); a code with no label is
# shown as it is. The data attributes (``data-status``) keep the codes.
LABELS: dict[Lang, dict[str, str]] = {
    "zh-CN": {
        # orders
        "open": "进行中",
        "closed": "已关闭",
        "cancelled": "已取消",
        "deleted": "已删除",
        "pending": "待处理",
        "authorized": "已授权",
        "partially_paid": "部分支付",
        "paid": "已支付",
        "partially_refunded": "部分退款",
        "voided": "已作废",
        "unfulfilled": "未发货",
        "partially_fulfilled": "部分发货",
        "fulfilled": "已发货",
        "restocked": "已退回库存",
        # after-sales cases
        "refund": "仅退款",
        "return": "退货退款",
        "exchange": "换货",
        "repair": "维修",
        "requested": "已申请",
        "approved": "已同意",
        "rejected": "已拒绝",
        "received": "已收货",
        "inspected": "已验货",
        "refunded": "已退款",
        "exchanged": "已换货",
        "repaired": "已维修",
        # shipments
        "info_received": "待揽收",
        "in_transit": "运输中",
        "out_for_delivery": "派送中",
        "ready_for_pickup": "待取件",
        "failed_attempt": "投递失败",
        "delivered": "已签收",
        "exception": "异常",
        "expired": "已过期",
        # tickets
        "new": "新建",
        "on_hold": "挂起",
        "solved": "已解决",
        "low": "低",
        "normal": "普通",
        "high": "高",
        "urgent": "紧急",
    },
    "en": {
        "partially_paid": "partially paid",
        "partially_refunded": "partially refunded",
        "partially_fulfilled": "partially fulfilled",
        "info_received": "info received",
        "in_transit": "in transit",
        "out_for_delivery": "out for delivery",
        "ready_for_pickup": "ready for pickup",
        "failed_attempt": "failed attempt",
        "on_hold": "on hold",
    },
}

SCRIPT = r"""
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var t = boot.strings;
  var labels = boot.labels || {};
  function label(code) { return code ? (labels[code] || code) : code; }
  var app = document.getElementById("app");
  var CLOSED = ["closed", "cancelled"];

  function el(tag, testid, text, cls) {
    var e = document.createElement(tag);
    if (testid) e.setAttribute("data-testid", testid);
    if (text !== undefined && text !== null && text !== "") e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function show(state, message) {
    app.setAttribute("data-state", state);
    var s = document.getElementById("status");
    s.textContent = message || "";
    s.hidden = !message;
  }
  function get(path, query) {
    var url = new URL(path, location.href);
    Object.keys(query || {}).forEach(function (k) { url.searchParams.set(k, query[k]); });
    return fetch(url.toString(), {
      headers: {"Authorization": "Session " + boot.session}, credentials: "omit", cache: "no-store"
    }).then(function (r) {
      return r.json().then(function (b) { return {status: r.status, body: b}; },
                           function () { return {status: r.status, body: {}}; });
    });
  }
  function section(id, items) {
    var s = document.getElementById(id);
    s.hidden = false;
    var list = s.querySelector("ul,ol");
    if (!items.length) list.appendChild(el("li", null, t.none, "muted"));
    return list;
  }
  function text(v) {
    if (v === null || v === undefined) return "";
    var s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return s.length > 120 ? s.slice(0, 117) + "…" : s;
  }
  function badge(row) {
    var key = row.eligible ? "in_warranty"
      : ({expired: "out_of_warranty", void: "warranty_void"}[row.status] || "warranty_unknown");
    var b = el("span", "warranty-badge", t[key] + (row.ends_on ? " " + t.until + " " + row.ends_on : ""),
               "tag " + (row.eligible ? "ok" : "bad"));
    b.setAttribute("data-eligible", row.eligible ? "true" : "false");
    b.setAttribute("data-status", row.status);
    return b;
  }

  function render(b) {
    if (b.matches && b.matches.length) {
      var ms = document.getElementById("matches");
      ms.hidden = false;
      b.matches.forEach(function (m) {
        var c = m.card || {};
        var li = el("li", "match", [c.name, c.phone, c.email].filter(Boolean).join("  ") || m.customer_id);
        li.setAttribute("data-customer-id", m.customer_id);
        ms.querySelector("ul").appendChild(li);
      });
      show("ready");
      return;
    }
    var c = b.customer || {};
    var card = document.getElementById("customer");
    card.hidden = false;
    card.setAttribute("data-customer-id", b.customer_id || "");
    document.querySelector("[data-testid=customer-name]").textContent = c.name || b.customer_id || "";
    document.querySelector("[data-testid=customer-phone]").textContent = c.phone || "";
    document.querySelector("[data-testid=customer-email]").textContent = c.email || "";
    var sources = document.querySelector("[data-testid=customer-sources]");
    (c.sources || []).forEach(function (s) { sources.appendChild(el("span", null, s, "tag source")); });

    var warranty = {};
    (b.warranty || []).forEach(function (w) { warranty[w.order_id + "\u0000" + w.serial] = w; });
    var orders = section("orders", b.orders || []);
    (b.orders || []).forEach(function (o) {
      var li = el("li", "order");
      li.setAttribute("data-source", o.source || "");
      li.setAttribute("data-order-id", o.order_id);
      var head = el("div", null, null, "row");
      head.appendChild(el("span", "order-source", o.source, "tag source"));
      head.appendChild(el("strong", "order-number", o.number || o.order_id));
      var state = [o.status, o.fulfillment_status].filter(Boolean).map(label).join(" · ");
      head.appendChild(el("span", "order-status", state, "muted"));
      if (o.total !== null && o.total !== undefined) {
        head.appendChild(el("span", "order-total", o.total + " " + (o.currency || "")));
      }
      li.appendChild(head);
      (o.lines || []).forEach(function (l) {
        var line = el("div", "order-line", null, "row line");
        line.appendChild(el("span", "order-line-title", [l.title, l.sku].filter(Boolean).join(" · ")));
        if (l.quantity) line.appendChild(el("span", null, "×" + l.quantity, "muted"));
        if (l.serial) {
          line.appendChild(el("span", "order-line-serial", t.serial + " " + l.serial, "muted"));
          var w = warranty[o.order_id + "\u0000" + l.serial];
          if (w) line.appendChild(badge(w));
        }
        li.appendChild(line);
      });
      orders.appendChild(li);
    });

    var all = b.after_sales_cases || [];
    var open = all.filter(function (k) { return CLOSED.indexOf(k.status) < 0; });
    var cases = section("cases", open);
    open.forEach(function (k) {
      var li = el("li", "case");
      li.setAttribute("data-case-id", k.case_id);
      var head = el("div", null, null, "row");
      head.appendChild(el("strong", "case-kind", label(k.kind) || k.case_id));
      var status = el("span", "case-status", label(k.status), "tag");
      status.setAttribute("data-status", k.status || "");
      head.appendChild(status);
      if (k.amount !== null && k.amount !== undefined) {
        head.appendChild(el("span", "case-amount", k.amount + " " + (k.currency || "")));
      }
      if (k.order_id) head.appendChild(el("span", null, k.order_id, "muted"));
      li.appendChild(head);
      var steps = el("ol", "case-progress", null, "steps");
      var path = k.status_path && k.status_path.length ? k.status_path : (k.status ? [k.status] : []);
      path.forEach(function (step, n) {
        var s = el("li", "case-step", label(step));
        s.setAttribute("data-status", step);
        s.setAttribute("data-current", n === path.length - 1 ? "true" : "false");
        steps.appendChild(s);
      });
      li.appendChild(steps);
      cases.appendChild(li);
    });
    if (all.length > open.length) {
      var closed = el("p", "closed-cases", t.closed_cases + (all.length - open.length), "muted");
      document.getElementById("cases").appendChild(closed);
    }

    var shipments = section("shipments", b.shipments || []);
    (b.shipments || []).forEach(function (s) {
      var li = el("li", "shipment");
      li.setAttribute("data-tracking", s.tracking_number || "");
      var head = el("div", null, null, "row");
      head.appendChild(el("strong", null, [s.carrier, s.tracking_number].filter(Boolean).join(" ")));
      head.appendChild(el("span", "shipment-status", label(s.status), "tag"));
      li.appendChild(head);
      var last = s.last_checkpoint;
      if (last) {
        var where = [last.time, last.location, last.message].filter(Boolean).join(" · ");
        li.appendChild(el("div", "shipment-checkpoint", where, "muted"));
      }
      shipments.appendChild(li);
    });

    var tickets = section("tickets", b.tickets || []);
    (b.tickets || []).forEach(function (k) {
      var li = el("li", "ticket");
      li.setAttribute("data-ticket-id", k.ticket_id);
      var head = el("div", null, null, "row");
      head.appendChild(el("strong", null, k.subject || k.ticket_id));
      head.appendChild(el("span", "ticket-status", label(k.status), "tag"));
      if (k.priority) head.appendChild(el("span", null, t.priority + " " + label(k.priority), "muted"));
      if (k.assignee) head.appendChild(el("span", null, t.assignee + " " + k.assignee, "muted"));
      li.appendChild(head);
      tickets.appendChild(li);
    });

    var timeline = section("timeline", b.timeline || []);
    (b.timeline || []).forEach(function (e) {
      var li = el("li", "timeline-entry");
      var head = el("div", null, null, "row");
      head.appendChild(el("span", null, e.occurred_at, "muted"));
      head.appendChild(el("span", null, e.source, "tag source"));
      head.appendChild(el("span", null, e.entity_id));
      li.appendChild(head);
      var changes = e.changes || [];
      changes.slice(0, 6).forEach(function (ch) {
        li.appendChild(el("div", "timeline-change", ch.field + ": " + text(ch.after), "change"));
      });
      if (changes.length > 6) li.appendChild(el("div", null, "+" + (changes.length - 6), "change"));
      timeline.appendChild(li);
    });
    show("ready");
  }

  function load(query) {
    get("sidebar/data", query).then(function (r) {
      if (r.status === 200) return render(r.body);
      if (r.status === 401) return show("expired", t.expired);
      if (r.status === 404) return show("empty", t.not_found);
      show("error", t.error);
    }, function () { show("error", t.error); });
  }

  function wecom() {
    if (typeof wx === "undefined" || !wx.agentConfig) return show("error", t.jssdk_failed);
    get("sidebar/jsapi", {url: location.href.split("#")[0]}).then(function (r) {
      if (r.status === 401) return show("expired", t.expired);
      if (r.status !== 200) return show("error", t.jssdk_failed);
      var c = r.body;
      wx.agentConfig({
        corpid: c.corpid, agentid: c.agentid, timestamp: c.timestamp, nonceStr: c.nonceStr,
        signature: c.signature, jsApiList: ["getCurExternalContact"],
        success: function () {
          wx.invoke("getCurExternalContact", {}, function (res) {
            if (res && res.err_msg === "getCurExternalContact:ok" && res.userId) {
              load({wecom_external_userid: res.userId});
            } else {
              show("error", t.no_contact);
            }
          });
        },
        fail: function () { show("error", t.jssdk_failed); }
      });
    }, function () { show("error", t.error); });
  }

  if (boot.mode === "wecom") {
    wecom();
  } else {
    // a screen pop: the phone (or the link) leaves the address bar and the history entry; no JS-SDK
    // signature depends on this page's URL
    try {
      var bare = new URL(location.href);
      bare.searchParams.delete("phone");
      bare.searchParams.delete("link");
      history.replaceState(null, "", bare.toString());
    } catch (ignored) { /* an old webview: the URL stays */ }
    load({});
  }
})();
"""


def page(lang: Lang, mode: Mode, session: str, script_urls: tuple[str, ...], script_nonce: str) -> str:
    """The sidebar page: the app's shell, its boot data and script, and (WeCom mode) the JS-SDK."""
    t = STRINGS[lang]
    boot = {"mode": mode, "session": session, "lang": lang, "strings": t, "labels": LABELS[lang]}
    sdk = (
        "".join(f'<script nonce="{script_nonce}" src="{html.escape(u)}"></script>' for u in script_urls)
        if mode == "wecom"
        else ""
    )

    def block(section_id: str, title: str, tag: str = "ul") -> str:
        return (
            f'<section id="{section_id}" data-testid="{section_id}-section" hidden>'
            f'<h2>{html.escape(title)}</h2><{tag} data-testid="{section_id}"></{tag}></section>'
        )

    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{html.escape(t["title"])}</title>'
        f'<style nonce="{script_nonce}">{CSS}</style></head><body>'
        f'<main id="app" data-testid="sidebar" data-state="loading" data-mode="{mode}">'
        f'<p id="status" data-testid="status">{html.escape(t["loading"])}</p>'
        '<section id="customer" data-testid="customer-card" hidden>'
        '<h1 data-testid="customer-name"></h1>'
        '<div class="row"><span data-testid="customer-phone"></span>'
        '<span data-testid="customer-email" class="muted"></span></div>'
        '<div class="row" data-testid="customer-sources"></div></section>'
        f'<section id="matches" data-testid="matches" hidden><h2>{html.escape(t["several"])}</h2><ul></ul></section>'
        + block("orders", t["orders"])
        + block("cases", t["cases"])
        + block("shipments", t["shipments"])
        + block("tickets", t["tickets"])
        + block("timeline", t["timeline"])
        + "</main>"
        f'<script type="application/json" id="boot">{_json_block(boot)}</script>'
        f"{sdk}"
        f'<script nonce="{script_nonce}">{SCRIPT}</script>'
        "</body></html>"
    )


def message_page(
    lang: Lang, title_key: str, message_key: str, script_nonce: str, link: tuple[str, str] | None = None
) -> str:
    """A page that only says something (401, 403, 404, 503), in the page's language, with at most one
    link (``(string key, href)``: sign in again)."""
    t = STRINGS[lang]
    anchor = (
        f'<p><a data-testid="message-link" href="{html.escape(link[1])}">{html.escape(t[link[0]])}</a></p>'
        if link
        else ""
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{html.escape(t[title_key])}</title>'
        f'<style nonce="{script_nonce}">{CSS}</style></head><body>'
        f'<main id="app" data-testid="sidebar" data-state="{html.escape(message_key)}"><section>'
        f'<h1 data-testid="message-title">{html.escape(t[title_key])}</h1>'
        f'<p data-testid="message">{html.escape(t[message_key])}</p>{anchor}</section></main></body></html>'
    )
