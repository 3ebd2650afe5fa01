"""Simplified Chinese for the event outputs and the webhook SSRF rules (vias/lib/ssrf.py,
analysis/outputs.py); merged by locale/zh_hans.py."""

ZH = {
    "the webhook URL must be a non-empty string": "webhook URL 必须是非空字符串",
    "the webhook URL must not contain spaces or control characters": "webhook URL 不能包含空格或控制字符",
    "the webhook URL must use http or https": "webhook URL 必须使用 http 或 https",
    "the webhook URL must not contain credentials (user:password@)": "webhook URL 不能包含凭据(user:password@)",
    "the webhook URL has no host": "webhook URL 缺少主机",
    "the webhook URL has an invalid host or port": "webhook URL 的主机或端口无效",
    "unspecified": "未指定",
    "loopback": "环回",
    "link-local": "链路本地",
    "multicast": "组播",
    "private": "私有",
    "reserved": "保留",
    "non-public": "非公网",
    "cannot resolve the webhook host %(host)s": "无法解析 webhook 主机 %(host)s",
    "the webhook host %(host)s resolves to %(ip)s (%(kind)s); only public addresses are allowed unless the host is listed in VIAS_WEBHOOK_ALLOWED_HOSTS": "webhook 主机 %(host)s 解析为 %(ip)s(%(kind)s);只允许公网地址,除非该主机列在 VIAS_WEBHOOK_ALLOWED_HOSTS 中",
    "dis.stream_name: use 1..64 letters, digits, '_' or '-'": "dis.stream_name:使用 1..64 个字母、数字、'_' 或 '-'",
    "obs.bucket and obs.path must be strings": "obs.bucket 和 obs.path 必须是字符串",
    "obs: %(path)s is not a safe place under the results directory": "obs:%(path)s 不是结果目录下的安全位置",
}
