"""Simplified Chinese for the websocket command protocol's messages (merged by locale/zh_hans.py)."""

ZH = {
    "%(n)d of %(total)d subtasks did not acknowledge within the timeout": "%(total)d 个子任务中有 %(n)d 个未在超时时间内确认",
    "%(n)d of %(total)d subtasks refused: %(reason)s": "%(total)d 个子任务中有 %(n)d 个拒绝:%(reason)s",
    "%(verb)s is not a command of %(resource)s; use %(verbs)s": "%(resource)s 不支持 %(verb)s 命令;请使用 %(verbs)s",
    "a request is a JSON object with command, src_page and params": "请求应为包含 command、src_page 和 params 的 JSON 对象",
    "differs from detector_models; send one": "与 detector_models 不一致;只需发送其中一个",
    "only picture tasks (pull_pic_files, push_pic_files) take a picture task config": "只有图片任务(pull_pic_files、push_pic_files)可以配置图片任务",
    "params must be a JSON object": "params 必须是 JSON 对象",
    "send requests as JSON text": "请以 JSON 文本发送请求",
    "the message broker (Redis) is unavailable; reconnect in a few seconds": "消息中间件(Redis)不可用;请稍后重新连接",
    "the message is nested too deeply": "消息嵌套层级过深",
    "the message is not valid JSON: %(reason)s": "消息不是有效的 JSON:%(reason)s",
    "the message is too large": "消息过大",
    "too many requests in flight on this socket (at most %(n)d)": "该连接上处理中的请求过多(最多 %(n)d 个)",
    "unknown path %(path)s; commands start with %(prefix)s/": "未知路径 %(path)s;命令应以 %(prefix)s/ 开头",
    "unknown resource %(resource)s": "未知资源 %(resource)s",
    "unknown verb %(verb)s; use %(verbs)s": "未知动词 %(verb)s;请使用 %(verbs)s",
    'command is required: "<verb> %(path)s/<resource>"': '缺少 command:"<verb> %(path)s/<resource>"',
    'command must be "<verb> %(path)s/<resource>"': 'command 的格式应为 "<verb> %(path)s/<resource>"',
    'a task_id string, or "*" for every task': 'task_id 字符串,或用 "*" 表示所有任务',
}
