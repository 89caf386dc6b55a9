# ruff: noqa: RUF001, E501 - full-width punctuation is correct in Chinese text; strings stay on one line
"""UI strings of the privacy center in English and Simplified Chinese.

The language is chosen exactly as on the consent page (``broker.web.interactions.i18n.language``);
field and scope descriptions come from the scope catalog. Every string exists in both languages.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "title": {"en": "Your privacy center", "zh": "你的隐私中心"},
    "nav_overview": {"en": "Apps", "zh": "应用"},
    "nav_disclosures": {"en": "Disclosure history", "zh": "披露记录"},
    "nav_receipts": {"en": "Consent receipts", "zh": "同意凭证"},
    "nav_export": {"en": "Download my data", "zh": "下载我的数据"},
    "nav_delete": {"en": "Delete my account", "zh": "删除我的账号"},
    "your_apps": {"en": "Apps you have allowed", "zh": "你已授权的应用"},
    "no_apps": {"en": "No app holds a grant from you.", "zh": "没有应用持有你的授权。"},
    "org_apps": {"en": "Apps added by your organizations", "zh": "你的组织添加的应用"},
    "org_apps_hint": {
        "en": "An administrator of the organization decided to share these fields with these apps. "
        "You cannot change it here: ask the administrator.",
        "zh": "组织管理员决定与这些应用共享以下信息。你无法在此更改，请联系管理员。",
    },
    "no_org_apps": {"en": "None of your organizations has added an app.", "zh": "你的组织尚未添加任何应用。"},
    "developer": {"en": "Developer", "zh": "开发者"},
    "granted": {"en": "Allowed on", "zh": "授权时间"},
    "fields": {"en": "What it receives", "zh": "获得的信息"},
    "last_disclosure": {"en": "Last received", "zh": "最近一次获取"},
    "never": {"en": "never", "zh": "从未"},
    "pending": {"en": "waiting to be added to the ledger", "zh": "等待写入账本"},
    "revoke_app": {"en": "Remove this app", "zh": "移除此应用"},
    "revoke_scope": {"en": "Withdraw", "zh": "撤回"},
    "organization": {"en": "Organization", "zh": "组织"},
    "decided_by": {"en": "Decided by", "zh": "决定者"},
    "decided_at": {"en": "on", "zh": "时间"},
    "enabled": {"en": "on", "zh": "已启用"},
    "disabled": {"en": "switched off", "zh": "已停用"},
    "confirm_app": {
        "en": "Remove {app}? It will stop receiving anything about you at once. What it already "
        "received is not undone.",
        "zh": "移除 {app}？它将立即停止获取你的任何信息。已获取的信息不会被撤回。",
    },
    "confirm_scope": {
        "en": "Withdraw “{scope}” from {app}? It will stop receiving these fields at once: {fields}.",
        "zh": "从 {app} 撤回“{scope}”？它将立即停止获取以下信息：{fields}。",
    },
    "confirm": {"en": "Yes, withdraw", "zh": "确认撤回"},
    "cancel": {"en": "Cancel", "zh": "取消"},
    "revoked_app": {
        "en": "{app} no longer receives anything about you.",
        "zh": "{app} 已无法再获取你的任何信息。",
    },
    "revoked_scope": {"en": "{app} no longer receives “{scope}”.", "zh": "{app} 已无法再获取“{scope}”。"},
    "disclosures_hint": {
        "en": "Every time an app received information about you. Each entry is checked against the "
        "latest signed checkpoint of the public ledger.",
        "zh": "应用每一次获取你信息的记录。每条记录都已对照公开账本最新的签名检查点进行验证。",
    },
    "app": {"en": "App", "zh": "应用"},
    "since": {"en": "From", "zh": "开始"},
    "until": {"en": "Until", "zh": "结束"},
    "filter": {"en": "Filter", "zh": "筛选"},
    "all_apps": {"en": "All apps", "zh": "全部应用"},
    "time": {"en": "Time", "zh": "时间"},
    "endpoint": {"en": "Endpoint", "zh": "接口"},
    "audience": {"en": "Through", "zh": "途径"},
    "individual": {"en": "your own consent", "zh": "你本人的同意"},
    "proof": {"en": "Proof", "zh": "证明"},
    "verified": {"en": "verified", "zh": "已验证"},
    "not_verified": {"en": "not verified", "zh": "未验证"},
    "not_yet": {"en": "in the next checkpoint", "zh": "将纳入下一个检查点"},
    "leaf": {"en": "leaf {index} of {size}", "zh": "第 {index} 条，共 {size} 条"},
    "not_delivered": {
        "en": "Not delivered: the request was refused before any data left",
        "zh": "未送达：请求在任何数据发出前被拒绝",
    },
    "correction_of": {
        "en": "Correction: the entry at leaf {index} was not delivered",
        "zh": "更正：第 {index} 条记录未送达",
    },
    "no_disclosures": {"en": "No disclosures match.", "zh": "没有符合条件的记录。"},
    "next_page": {"en": "Older and more", "zh": "下一页"},
    "raw_json": {"en": "The same records as JSON", "zh": "这些记录的 JSON 格式"},
    "public_keys": {"en": "Ledger public keys", "zh": "账本公钥"},
    "checkpoint": {
        "en": "Checked against checkpoint of {size} records",
        "zh": "已对照包含 {size} 条记录的检查点",
    },
    "no_checkpoint": {"en": "No checkpoint has been signed yet.", "zh": "尚未签署检查点。"},
    "receipts_hint": {
        "en": "A signed receipt for each consent you gave, changed or withdrew.",
        "zh": "你每次授予、更改或撤回同意时获得的签名凭证。",
    },
    "action": {"en": "Action", "zh": "操作"},
    "download": {"en": "Download", "zh": "下载"},
    "no_receipts": {"en": "No receipts yet.", "zh": "暂无凭证。"},
    "export_hint": {
        "en": "One file (NDJSON) with your profile, memberships, grants, receipts and disclosures.",
        "zh": "一个文件（NDJSON），包含你的资料、组织成员身份、授权、凭证和披露记录。",
    },
    "delete_heading": {"en": "Delete your account", "zh": "删除你的账号"},
    "delete_explain": {
        "en": "Every app loses access at once and is told your account is gone; you leave your "
        "organizations; your profile is erased. Disclosure records stay, without your profile, for "
        "{days} days so apps remain accountable, then their contents are removed. Download your data first "
        "if you want a copy. This cannot be undone.",
        "zh": "所有应用将立即失去访问权限并收到账号已删除的通知；你将退出所有组织；你的资料将被清除。"
        "披露记录（不含你的资料）将保留 {days} 天以便追责，之后其内容将被删除。如需副本请先下载你的数据。此操作无法撤销。",
    },
    "type_username": {
        "en": "Type your username ({username}) to confirm",
        "zh": "输入你的用户名（{username}）以确认",
    },
    "delete_button": {"en": "Delete my account", "zh": "删除我的账号"},
    "wrong_username": {"en": "The username does not match.", "zh": "用户名不匹配。"},
    "deleted": {"en": "Your account has been deleted.", "zh": "你的账号已删除。"},
    "language": {"en": "Language", "zh": "语言"},
}


def t(key: str, lang: str, **params: object) -> str:
    text = STRINGS[key].get(lang) or STRINGS[key]["en"]
    return text.format(**params) if params else text
