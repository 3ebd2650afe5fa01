"""Simplified Chinese for the VIAS v2 dialect's messages (merged by locale/zh_hans.py)."""

ZH = {
    "use 1..100 letters, digits, '_' or '-'": "请使用 1..100 个字母、数字、“_”或“-”",
    "use 1..100 Chinese characters, letters, digits, '_' or '-'": "请使用 1..100 个汉字、字母、数字、“_”或“-”",
    "use 3..32 lowercase letters, digits or '.'": "请使用 3..32 个小写字母、数字或“.”",
    "use 4..36 lowercase letters, digits, '_' or '-'": "请使用 4..36 个小写字母、数字、“_”或“-”",
    "an algorithm id is a lowercase version-4 UUID": "算法 ID 是小写的第 4 版 UUID",
    "use 2..64 Chinese characters, letters, digits, '_', ',' or '-'": "请使用 2..64 个汉字、字母、数字、“_”、“,”或“-”",
    "webhook.url must be an http or https URL with a host": "webhook.url 必须是带主机名的 http 或 https URL",
    "obs.bucket: use 3..63 lowercase letters, digits, '-' or '.', no two of '-.' in a row": (
        "obs.bucket:请使用 3..63 个小写字母、数字、“-”或“.”,“-”和“.”不能连续出现"
    ),
    "obs.path: at most 1023 characters, none of :*?\"<>|\\, no '//', not starting with '/', '.' or a space, "
    "not ending with '.' or a space": (
        'obs.path:最多 1023 个字符,不能包含 :*?"<>|\\ 或“//”,不能以“/”、“.”或空格开头,不能以“.”或空格结尾'
    ),
    "output.event_center must be true or false": "output.event_center 必须是 true 或 false",
    "config.common must be an object": "config.common 必须是对象",
    "schedule.timezone must be an offset such as +08:00 (-12:00..+14:00)": (
        "schedule.timezone 必须是 +08:00 这样的时差(-12:00..+14:00)"
    ),
    "schedule.periods must be a list of lists of windows: one list for every day, or one per day of days_of_week": (
        "schedule.periods 必须是时间段列表的列表:一个列表用于每一天,或 days_of_week 中每天各一个列表"
    ),
    "schedule.type: only weekly schedules are supported": "schedule.type:只支持按周调度(weekly)",
    "schedule.days_of_month: monthly schedules are not supported": "schedule.days_of_month:不支持按月调度",
    "%(what)s must be an object": "%(what)s 必须是对象",
    "%(what)s: unknown key %(key)s; allowed: %(allowed)s": "%(what)s:未知的键 %(key)s;允许:%(allowed)s",
    "%(where)s must be a string of %(low)d..%(high)d characters": "%(where)s 必须是 %(low)d..%(high)d 个字符的字符串",
    "%(where)s.data_category must be a list of at most %(n)d strings": (
        "%(where)s.data_category 必须是最多 %(n)d 个字符串的列表"
    ),
    "webhook.headers must be an object of 1..%(n)d string pairs": "webhook.headers 必须是包含 1..%(n)d 个字符串键值对的对象",
    "config is over %(n)d bytes": "config 超过 %(n)d 字节",
    "%(where)s must be a time HH:MM or HH:MM:SS": "%(where)s 必须是 HH:MM 或 HH:MM:SS 格式的时间",
    "%(where)s must be a list of 1..%(n)d integers in %(low)d..%(high)d": (
        "%(where)s 必须是 1..%(n)d 个取值在 %(low)d..%(high)d 之间的整数列表"
    ),
    "%(where)s lists a day twice": "%(where)s 中某一天出现了两次",
    "%(what)s.%(key)s is required": "%(what)s.%(key)s 为必填项",
    "webhook.headers: %(name)r is not a header name": "webhook.headers:%(name)r 不是合法的请求头名称",
    "webhook.headers.%(name)s must be a one-line string of at most %(n)d characters": (
        "webhook.headers.%(name)s 必须是最多 %(n)d 个字符的单行字符串"
    ),
    "%(where)s must be a list of 1..%(n)d windows": "%(where)s 必须是 1..%(n)d 个时间段的列表",
    "%(where)s: begin_at and end_at must differ": "%(where)s:begin_at 与 end_at 不能相同",
    "vendor": "厂商",
    "weekly schedule": "每周调度",
    "started: its schedule starts and stops it at the window edges": "已启动:按调度时间段的起止自动启动和停止",
    "v2 algorithm service": "v2 算法服务",
    "configure at least one output mode (obs, dis, webhook, event_center)": (
        "请至少配置一种输出方式(obs、dis、webhook、event_center)"
    ),
    "at most %(n)d characters": "最多 %(n)d 个字符",
    "stop the batch task before changing it: some of its tasks are running": "请先停止批量任务再修改:其中有任务正在运行",
    "stop the batch task before deleting it: some of its tasks are running": "请先停止批量任务再删除:其中有任务正在运行",
    "stop the task before deleting it: some of its subtasks are running": "请先停止任务再删除:其中有子任务正在运行",
    "no batch task %(id)s": "批量任务 %(id)s 不存在",
    "a video source is listed twice": "同一视频源出现了两次",
    "check the request against the API reference and send it again": "请对照 API 参考检查请求后重新发送",
    "check the ID in the path; it must belong to your project": "请检查路径中的 ID,它必须属于您的项目",
    "use another ID, or change the existing object": "请使用其他 ID,或修改已有的对象",
    "stop the task first, or remove what still uses the object": "请先停止任务,或移除仍在使用该对象的内容",
    "send a valid token of this project in X-Auth-Token": "请在 X-Auth-Token 中发送本项目的有效令牌",
    "try again later; if it persists, contact the administrator": "请稍后重试;如果问题持续,请联系管理员",
    "check the task ID; it must belong to your project": "请检查任务 ID,它必须属于您的项目",
    "{input} is not supported; use video_source or url": "不支持 {input};请使用 video_source 或 url",
    "an update takes exactly one input": "修改时只能有一个输入",
    "{input} is not supported; use url": "不支持 {input};请使用 url",
    "This field is required.": "该字段是必填项。",
    "the token is not valid for the project_id in the path": "该令牌对路径中的 project_id 无效",
    "no video source %(id)s": "视频源 %(id)s 不存在",
    # Task-state callbacks on the task's admin page (issue 16).
    "State callbacks": "任务状态回调",
    "all state callbacks of this task": "该任务的全部状态回调",
    "No state change delivered yet.": "尚未投递任何状态变更。",
    "split again over other video channels": "已按其他视频通道重新拆分",
    "subtask %(id)s deleted": "子任务 %(id)s 已删除",
    # obs video sources (issue 16).
    "video sources of type %(k)s cannot be analysed here; use url or obs": "此处无法分析 %(k)s 类型的视频源;请使用 url 或 obs",
    "an obs video source needs <bucket>: 3..63 lowercase letters, digits, '-' or '.', no two of '-.' in a row": "obs 类型的视频源需要 <bucket>:3..63 个小写字母、数字、“-”或“.”,“-”和“.”不能连续出现",
    "an obs video source needs <path>, an object: at most 1023 characters, none of :*?\"<>|\\, no '//', not starting with '/', '.' or a space, not ending with '/', '.' or a space": 'obs 类型的视频源需要 <path>(一个对象):最多 1023 个字符,不能包含 :*?"<>|\\ 或“//”,不能以“/”、“.”或空格开头,不能以“/”、“.”或空格结尾',
}
