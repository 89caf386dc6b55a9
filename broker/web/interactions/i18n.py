# ruff: noqa: RUF001 - full-width punctuation is correct in Chinese text
"""UI strings of the interaction pages in English and Simplified Chinese.

The person's language comes from ``?lang=en|zh`` (remembered in the session), else from
Accept-Language, else English. Every string exists in both languages (a test checks it).
"""

from __future__ import annotations

from flask import request, session

LANGUAGES = ("en", "zh")
HTML_LANG = {"en": "en", "zh": "zh-Hans"}

STRINGS: dict[str, dict[str, str]] = {
    "page_title": {"en": "Share your information with {app}?", "zh": "与 {app} 共享你的信息？"},
    "heading": {"en": "{app} wants to access your information", "zh": "{app} 请求访问你的信息"},
    "recipient": {"en": "Who receives it", "zh": "接收方"},
    "app": {"en": "App", "zh": "应用"},
    "developer": {"en": "Developer", "zh": "开发者"},
    "contact": {"en": "Contact", "zh": "联系方式"},
    "privacy_policy": {"en": "Privacy policy", "zh": "隐私政策"},
    "purpose": {"en": "Purpose", "zh": "用途"},
    "default_purpose": {
        "en": "Sign in and show your basic profile in {app}",
        "zh": "登录并在 {app} 中显示你的基本资料",
    },
    "fields_heading": {"en": "What {app} will receive", "zh": "{app} 将获得的信息"},
    "required": {"en": "always shared when you allow", "zh": "允许后必须共享"},
    "optional": {"en": "untick to keep it private", "zh": "取消勾选即可不共享"},
    "separate_heading": {"en": "Needs your separate consent", "zh": "需要你单独同意"},
    "separate_hint": {
        "en": "These are not shared unless you tick them.",
        "zh": "除非你勾选，否则不会共享以下信息。",
    },
    "withdraw": {
        "en": "You can withdraw your consent at any time in your privacy center. Withdrawal stops future "
        "sharing; it does not undo what was already shared.",
        "zh": "你可以随时在隐私中心撤回同意。撤回后将停止今后的共享，但不影响此前已共享的信息。",
    },
    "approve": {"en": "Allow", "zh": "允许"},
    "deny": {"en": "Deny", "zh": "拒绝"},
    "language": {"en": "Language", "zh": "语言"},
    "unknown_developer": {"en": "unknown developer", "zh": "未知开发者"},
    "not_found": {
        "en": "This consent request is unknown or has expired. Go back to the app and start again.",
        "zh": "此授权请求不存在或已过期。请返回应用重新开始。",
    },
    "app_unavailable": {
        "en": "This app is not available at the moment.",
        "zh": "此应用暂时不可用。",
    },
    "bad_action": {"en": "Choose Allow or Deny.", "zh": "请选择允许或拒绝。"},
    "bad_field": {
        "en": "The form lists a field this app did not ask for.",
        "zh": "表单包含此应用未请求的信息。",
    },
}


def language() -> str:
    """The page language; an explicit ``?lang=`` choice is remembered in the session."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    remembered = session.get("lang")
    if remembered in LANGUAGES:
        return str(remembered)
    for tag, _quality in request.accept_languages:
        primary = tag.split("-")[0].split("_")[0].lower()
        if primary in LANGUAGES:
            return primary
    return "en"


def t(key: str, lang: str, **params: str) -> str:
    text = STRINGS[key].get(lang) or STRINGS[key]["en"]
    return text.format(**params) if params else text
