"""Simplified Chinese for the admin's JavaScript strings that Django's own zh_Hans catalogue has not
translated yet (its SelectFilter2 widget: the video channels of a task, the members of a project).
`python locale/zh_hans_js.py` writes locale/zh_Hans/LC_MESSAGES/djangojs.po and compiles the .mo;
the admin's /admin/jsi18n/ serves them together with Django's own (LOCALE_PATHS)."""

ZH: dict[str, str] = {}  # nothing for the server-side catalogue (locale/zh_hans.py merges these tables)

JS = {
    "(click to clear)": "(点击清除)",
    'Choose %s by selecting them and then select the "Choose" arrow button.': "选中要选择的%s,然后点击“选择”箭头按钮。",
    "Choose all %s": "选择全部%s",
    "Choose selected %s": "选择选中的%s",
    'Remove %s by selecting them and then select the "Remove" arrow button.': "选中要删除的%s,然后点击“删除”箭头按钮。",
    "Remove all %s": "删除全部%s",
    "Remove selected %s": "删除选中的%s",
}


def main() -> None:
    from pathlib import Path

    import polib

    here = Path(__file__).resolve().parent / "zh_Hans" / "LC_MESSAGES"
    po = polib.POFile()
    po.metadata = {
        "Project-Id-Version": "VIAS",
        "Language": "zh_Hans",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": "nplurals=1; plural=0;",
    }
    for msgid, msgstr in JS.items():
        po.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    po.save(str(here / "djangojs.po"))
    po.save_as_mofile(str(here / "djangojs.mo"))


if __name__ == "__main__":
    main()
