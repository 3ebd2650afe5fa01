"""Simplified Chinese for VIAS's own messages. `python locale/zh_hans.py` refreshes the .po from
this table after `manage.py makemessages -l zh_Hans`, then compiles the .mo (pure Python, polib)."""

ZH = {
    "Analysis": "分析",
    "Subtasks": "子任务",
    "Tasks": "任务",
    "pending configuration": "待配置",
    "configured": "已配置",
    "starting": "启动中",
    "running": "运行中",
    "stopping": "停止中",
    "stopped": "已停止",
    "succeeded": "已完成",
    "failed": "失败",
    "abnormal": "异常",
    "recovering": "恢复中",
    "rois must be a list of at most %(n)d XML documents": "rois 必须是最多 %(n)d 个 XML 文档的列表",
    "providers, GPU name, models": "推理后端、GPU 名称、模型",
    "subtasks it runs at once": "可同时运行的子任务数",
    "no subtask %(id)s": "子任务 %(id)s 不存在",
    "subtask %(id)s cannot go from %(from)s to %(to)s": "子任务 %(id)s 不能从 %(from)s 变为 %(to)s",
    "subtask %(id)s changed state meanwhile (now %(state)s)": "子任务 %(id)s 的状态已被修改(当前为 %(state)s)",
    "subtask %(id)s is %(state)s; stop it first": "子任务 %(id)s 处于 %(state)s 状态,请先停止",
    "the task has no subtasks to start": "该任务没有可启动的子任务",
    "no subtask is config-complete; configure the subtasks and mark them config-complete first": "没有配置完成的子任务;请先配置子任务并点击“配置完成”",
    "already %(state)s": "已处于 %(state)s",
    "not config-complete": "尚未配置完成",
    "cannot start from %(state)s": "无法从 %(state)s 状态启动",
    "stopped before it started": "在启动前已停止",
    "stop requested": "已请求停止",
    "not running": "未在运行",
    "a video channel is a vchan_refid string or an object with vchan_refid": "视频通道应为 vchan_refid 字符串或包含 vchan_refid 的对象",
    "%(key)s must be a string": "%(key)s 必须是字符串",
    "traffic": "交通",
    "passenger flow": "客流",
    "security": "安防",
    "illegal parking": "违停",
    "face": "人脸",
    "pull video stream": "拉取视频流",
    "pull picture files": "拉取图片",
    "push picture files": "推送图片",
    "polling": "轮询",
    "time window": "时间段",
    "batch": "批量",
    "include": "包含",
    "exclude": "排除",
    "both directions": "双向",
    "from the left of A→B to its right": "从 A→B 左侧到右侧",
    "from the right of A→B to its left": "从 A→B 右侧到左侧",
    "the first characters, to recognise a token": "令牌的前几个字符,用于辨认",
    "increases on every replace": "每次替换时递增",
    "the file is over the limit of %(cap)d bytes": "文件超过 %(cap)d 字节的上限",
    "frame width, when known": "画面宽度(已知时)",
    "frame height, when known": "画面高度(已知时)",
    "pull_pic_files needs pull_source_url": "pull_pic_files 需要填写 pull_source_url",
    "unknown storage config": "存储配置不存在",
    "minutes": "分钟",
    "must equal the task's algo_type %(expected)s, not %(got)s": "必须与大任务的 algo_type %(expected)s 一致,而不是 %(got)s",
    "link_scenes must be a list": "link_scenes 必须是列表",
    "play_urls must be an object": "play_urls 必须是对象",
    "no task %(id)s": "任务 %(id)s 不存在",
    "no video channel %(r)s": "视频通道 %(r)s 不存在",
    "no storage config %(unid)s": "存储配置 %(unid)s 不存在",
    "stop the task before changing it: some of its subtasks are running": "修改前请先停止任务:部分子任务正在运行",
    "%(field)s cannot change once the task is split into subtasks; create a new task": "任务拆分为子任务后 %(field)s 不能修改;请新建任务",
    "vchans cannot change on update; add or delete subtasks instead": "修改任务时不能更改 vchans;请增删子任务",
    "the task still has %(n)d subtasks; delete them first (DELETE /subtasks/{id})": "该任务下还有 %(n)d 个子任务;请先删除子任务(DELETE /subtasks/{id})",
    "at most %(n)d mtasks": "最多 %(n)d 个 mtask",
    "mtask_unid %(u)s is used twice": "mtask_unid %(u)s 重复",
    "at most %(n)d scenes": "最多 %(n)d 个场景",
    "at most %(n)d ROIs": "最多 %(n)d 个 ROI",
    "at most %(n)d video channels": "最多 %(n)d 个视频通道",
    "vchans are for pull_video_stream tasks only": "vchans 只适用于 pull_video_stream 任务",
    "a video channel is listed twice": "视频通道重复",
    "no video channel %(r)s (give its url to create it)": "视频通道 %(r)s 不存在(提供 url 即可创建)",
    "video channel %(r)s exists with another url": "视频通道 %(r)s 已存在且 url 不同",
    "storage config %(u)s already exists": "存储配置 %(u)s 已存在",
    "unid cannot change": "unid 不能修改",
    "storage config %(u)s is used by %(n)d tasks": "存储配置 %(u)s 正被 %(n)d 个任务使用",
    "video channel %(r)s already exists": "视频通道 %(r)s 已存在",
    "vchan_refid cannot change": "vchan_refid 不能修改",
    "the channel is being analysed; stop its subtasks before changing its url": "该通道正在分析;修改 url 前请先停止其子任务",
    "video channel %(r)s is used by %(n)d subtasks": "视频通道 %(r)s 正被 %(n)d 个子任务使用",
    "use 1..64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit": "请使用 1..64 个字母、数字、'_'、'.'、':' 或 '-',并以字母或数字开头",
    "use 1..10 letters or digits": "请使用 1..10 个字母或数字",
    "use 1..64 letters, digits, '_' or '-'": "请使用 1..64 个字母、数字、'_' 或 '-'",
    "a source URL must be non-empty, without spaces around or control characters": "视频源地址不能为空,首尾不能有空格,也不能含控制字符",
    "the scheme %(scheme)s: is not allowed; use rtsp, rtsps, http, https or a file in the video store": "不允许使用 %(scheme)s: 协议;请使用 rtsp、rtsps、http、https 或视频库中的文件",
    "the URL %(url)s has no host": "地址 %(url)s 缺少主机名",
    "the protocol in %(url)s is not allowed": "%(url)s 中的协议不被允许",
    "a video file must be given relative to the video store, not as %(p)s": "视频文件必须使用相对于视频库的路径,而不是 %(p)s",
    "the path %(p)s leaves the video store": "路径 %(p)s 超出了视频库",
    "file_b64 must be a base64 string": "file_b64 必须是 base64 字符串",
    "file_b64 is not valid base64": "file_b64 不是有效的 base64",
    "algo_args must be an object": "algo_args 必须是对象",
    "unknown key %(key)r for algo_type %(type)s; allowed: %(allowed)s": "algo_type %(type)s 不支持参数 %(key)r;允许的参数:%(allowed)s",
    "%(key)s must be true or false": "%(key)s 必须是 true 或 false",
    "%(key)s must be a %(kind)s": "%(key)s 的类型必须是 %(kind)s",
    "%(key)s must be within %(low)s..%(high)s": "%(key)s 必须在 %(low)s..%(high)s 之间",
    "line %(line)d": "第 %(line)d 行",
    "the document element must be <root>, not <%(tag)s>": "根元素必须是 <root>,而不是 <%(tag)s>",
    "<%(tag)s> needs the attribute %(name)s": "<%(tag)s> 缺少属性 %(name)s",
    "%(name)s=%(raw)r is not a number": "%(name)s=%(raw)r 不是数字",
    "%(name)s=%(raw)s is outside %(low)s..%(high)s": "%(name)s=%(raw)s 超出 %(low)s..%(high)s 的范围",
    "<%(tag)s> may only contain <point>": "<%(tag)s> 只能包含 <point>",
    "<%(tag)s> needs a name of 1..64 characters": "<%(tag)s> 需要 1..64 个字符的名称",
    "the name %(name)r is used twice": "名称 %(name)r 重复",
    "%(name)s=%(value)r must be one of %(choices)s": "%(name)s=%(value)r 必须是 %(choices)s 之一",
    "a polygon needs 3..%(max)d points": "多边形需要 3..%(max)d 个点",
    "a line needs exactly 2 different points": "线段需要两个不同的点",
    "unknown element <%(tag)s>: use <polygon> or <line>": "未知元素 <%(tag)s>:请使用 <polygon> 或 <line>",
    "unknown element <%(tag)s>: use <pair>": "未知元素 <%(tag)s>:请使用 <pair>",
    "a <pair> holds exactly one <image> and one <ground>": "<pair> 必须且只能包含一个 <image> 和一个 <ground>",
    "a calibration needs at least %(n)d point pairs": "标定至少需要 %(n)d 对点",
    "the calibration points are degenerate (three or more on one line?)": "标定点退化(是否有三个以上的点共线?)",
    "malformed API token": "API 令牌格式错误",
    "unknown API token": "API 令牌无效",
    "invalid input": "输入无效",
    "the request body is too large": "请求体过大",
    "an API token is required (Authorization or X-Auth-Token header)": "需要 API 令牌(Authorization 或 X-Auth-Token 请求头)",
    "permission denied": "没有权限",
    "not found": "未找到",
    "the request body is not valid JSON: %(reason)s": "请求体不是有效的 JSON:%(reason)s",
    "unsupported content type; send application/json": "不支持的内容类型;请发送 application/json",
    "method %(method)s is not allowed here": "此处不允许 %(method)s 方法",
    "too many requests": "请求过多",
    "the request was refused as malformed": "请求格式错误,已拒绝",
    "internal error": "内部错误",
    "Content-Length is not a number": "Content-Length 不是数字",
    "the request body is %(size)d bytes, over the limit of %(cap)d bytes": "请求体为 %(size)d 字节,超过 %(cap)d 字节的上限",
    "XML error at line %(line)d, column %(column)d: %(message)s": "XML 错误,第 %(line)d 行第 %(column)d 列:%(message)s",
    "the XML document is empty": "XML 文档为空",
    "an XML document must be a string": "XML 文档必须是字符串",
    "the XML document is %(size)d bytes, over the limit of %(cap)d bytes": "XML 文档为 %(size)d 字节,超过 %(cap)d 字节的上限",
    "a DOCTYPE or entity declaration is not allowed": "不允许 DOCTYPE 或实体声明",
    "entity references are not allowed": "不允许实体引用",
    "body": "人体",
    "motor vehicle": "机动车",
    "non-motor vehicle": "非机动车",
    "models must be a list": "models 必须是列表",
    "unknown model %(name)s; use %(allowed)s": "未知模型 %(name)s;可用:%(allowed)s",
    "a model is listed twice": "模型重复列出",
    "detector models to run (face, body, motor, no_motor); empty: chosen by algo_type": "要运行的检测模型(人脸、人体、机动车、非机动车);为空时按算法类型选择",
    "the client that created it (VCS clientName)": "创建它的客户端(VCS 接口传入的客户端名称)",
    "must be a number greater than 0": "必须是大于 0 的数",
    "length of the source file, in seconds": "源视频文件时长(秒)",
    "wall-clock time of the source file's first frame": "源视频文件第一帧的时间",
    "algo_type cannot change without replacing the task's mtasks": "不替换任务的 mtasks 时不能修改 algo_type",
    "a video id is 1..128 letters, digits, '_' or '-'": "视频 ID 为 1..128 个字母、数字、'_' 或 '-'",
    "no video file %(id)s in the video store": "视频库中没有视频文件 %(id)s",
    "must be historyVideoFile, not {input}": "必须为 historyVideoFile,而不是 {input}",
    "cannot change: it is always historyVideoFile": "不能修改:固定为 historyVideoFile",
    "cannot change (it is %(name)s)": "不能修改(当前为 %(name)s)",
    "nested deeper than %(n)d levels": "嵌套超过 %(n)d 层",
    "null characters are not allowed": "不允许空字符",
    "surrogate characters are not allowed": "不允许代理字符",
    "numbers must be finite": "数字必须是有限值",
    "nested too deeply": "嵌套层级过深",
    "English": "英语",
    "Simplified Chinese": "简体中文",
}


def all_translations() -> dict[str, str]:
    """This table plus every `locale/zh_hans_<area>.py` next to it (each defines its own ZH), so
    work on different areas adds translations without editing one shared file."""
    import importlib.util
    from pathlib import Path

    merged = dict(ZH)
    for path in sorted(Path(__file__).resolve().parent.glob("zh_hans_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        merged.update(module.ZH)
    return merged


def main() -> None:
    from pathlib import Path

    import polib

    table = all_translations()

    here = Path(__file__).resolve().parent / "zh_Hans" / "LC_MESSAGES"
    po = polib.pofile(str(here / "django.po"))
    missing = []
    for entry in po:
        if entry.msgid in table and entry.msgid_plural:  # Chinese has one plural form
            entry.msgstr_plural = {0: table[entry.msgid]}
            entry.flags = [f for f in entry.flags if f != "fuzzy"]
        elif entry.msgid in table:
            entry.msgstr = table[entry.msgid]
            entry.flags = [f for f in entry.flags if f != "fuzzy"]
        elif entry.msgid:
            missing.append(entry.msgid)
    po.metadata.update({"Language": "zh_Hans", "Content-Type": "text/plain; charset=UTF-8"})
    po.save()
    po.save_as_mofile(str(here / "django.mo"))
    for msgid in missing:
        print("untranslated:", msgid)


if __name__ == "__main__":
    main()
