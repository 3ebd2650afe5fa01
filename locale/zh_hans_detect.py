"""Simplified Chinese for detection (analysis/detect: the detector registry's refusals); merged by
locale/zh_hans.py."""

ZH = {
    "run `python manage.py fetch_models`, or register an ONNX model in the admin (Detectors)": "请运行 `python manage.py fetch_models`,或在管理后台(检测器)中注册 ONNX 模型",
    "register an ONNX model that maps some class to it in the admin (Detectors)": "请在管理后台(检测器)中注册一个有类别映射到该类别的 ONNX 模型",
    "no detector is registered for the category %(category)s: %(hint)s": "类别 %(category)s 没有已注册的检测器:%(hint)s",
    "no detector is registered for the category face, and this OpenCV (%(version)s) has no Haar face cascade to fall back on: register a face ONNX model in the admin (Detectors)": "类别 face 没有已注册的检测器,且当前 OpenCV(%(version)s)没有可回退使用的 Haar 人脸级联分类器:请在管理后台(检测器)中注册人脸 ONNX 模型",
    "the detector %(name)s for %(category)s has no model file %(path)s": "类别 %(category)s 的检测器 %(name)s 缺少模型文件 %(path)s",
    "run `python manage.py fetch_models`": "请运行 `python manage.py fetch_models`",
}
