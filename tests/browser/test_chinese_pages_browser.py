"""Every page an operator opens, in Chinese, in Chromium: after the scripts have run (state badges,
figures, live view, editors, the language switch), the rendered text has no English word but the
allow-list's proper names and units and the page's own data (tests/test_console_i18n.py, which
checks the same pages' HTML). Screenshots var/screenshots/18-zh-<page>.png."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login, screenshot
from tests.test_console_i18n import (
    CONSOLE_PAGES,
    OPERATOR_PAGES,
    english_words,
    make_console_data,
    make_operator_data,
    page_words,
    pages,
)

# What a reader sees (innerText: rendered text only, closed <details> and hidden elements out),
# without the code editors' documents and <code> (commands, paths: code, not labels).
RENDERED_TEXT = """() => {
  const code = [...document.querySelectorAll('.CodeMirror, code')];
  code.forEach(n => { n.dataset.viasDisplay = n.style.display; n.style.display = 'none'; });
  const text = document.body.innerText;
  code.forEach(n => { n.style.display = n.dataset.viasDisplay; });
  return text;
}"""


@pytest.fixture
def operator_pages(admin_user):
    from tasks.models import Project

    project = Project.objects.get(project_id="ops")
    return make_operator_data(project, make_console_data(project))


def test_every_operator_page_rendered_in_chinese_shows_no_english_word(page, asgi_server, operator_pages):
    login(page, asgi_server)
    page.select_option("select[name=language]", "zh-hans")
    page.wait_for_selector("html[lang=zh-hans]")
    found: dict[str, list[str]] = {}
    for name in [*CONSOLE_PAGES, *OPERATOR_PAGES]:
        page.goto(asgi_server + pages(operator_pages)[name])
        page.wait_for_selector("html[lang=zh-hans]")
        page.wait_for_load_state("load")
        # Data on the pages, and the language switch's "English" (a language is named in its own words).
        words = page_words(operator_pages, name) | {"English"}
        left = english_words(page.evaluate(RENDERED_TEXT), words)
        if left:
            found[name] = left
        screenshot(page, f"18-zh-{name.replace(' ', '-')}")
    assert not found, f"English on pages in Chinese: {found}"
