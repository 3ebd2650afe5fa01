"""The hardened XML parser every XML field goes through (vias/lib/xmlsafe.py).

The attacks here are the classic ones: external entities (XXE) naming a local file or a URL,
parameter entities, external DTDs, entity expansion (billion laughs, quadratic blowup) and
oversized documents. "Never reads the file" and "never connects" are checked with a FIFO and a
listening socket, so a parser that merely hid what it fetched would still be caught.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import etree

from tasks import constants
from vias.lib import xmlsafe
from vias.lib.xmlsafe import check_xml, parse_xml, pretty


def shape(element: etree._Element) -> tuple:
    """A comparable form of a tree that ignores indentation (whitespace-only text)."""
    text = (element.text or "").strip()
    return (
        element.tag,
        tuple(sorted(element.attrib.items())),
        text,
        tuple(shape(child) for child in element),
        (element.tail or "").strip(),
    )


# ---- well-formedness and where the error is ----------------------------------------------------


def test_malformed_xml_names_line_and_column():
    problem = check_xml("<root>\n  <a>\n</root>")
    assert problem is not None
    assert problem.line == 3
    assert problem.column > 0
    assert "mismatch" in problem.message.lower()


def test_parse_xml_message_carries_line_and_column():
    with pytest.raises(ValidationError) as exc:
        parse_xml("<root>\n<a>\n<b></a></root>")
    message = exc.value.messages[0]
    assert message.startswith("XML error at line 3, column ")
    assert exc.value.code == "xml"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("<root attr=1/>", 1),
        ("<root/><root/>", 1),
        ("<root>\n\n<unclosed>\n</root>", 4),
        ("no xml at all", 1),
        ("<root>&undefined;</root>", 1),
        ("<root>\n<a x='1' x='2'/></root>", 2),
    ],
)
def test_syntax_errors_are_located(text, line):
    problem = check_xml(text)
    assert problem is not None
    assert problem.line == line
    assert problem.column >= 1


@pytest.mark.parametrize("text", ["", "   ", "\n\t", b"", b"  "])
def test_empty_document_is_refused_with_a_message(text):
    problem = check_xml(text)
    assert problem is not None
    assert "empty" in problem.message


@pytest.mark.parametrize("value", [None, 12, ["<root/>"]])
def test_non_string_is_refused_not_crashed(value):
    assert check_xml(value) is not None
    with pytest.raises(ValidationError):
        parse_xml(value)


def test_predefined_and_character_entities_are_fine():
    root = parse_xml("<root a='&lt;&amp;&#65;&#x42;'>&gt;</root>")
    assert root.get("a") == "<&AB"
    assert root.text == ">"


def test_comments_and_processing_instructions_are_dropped():
    root = parse_xml("<root><!-- note --><?pi data?><a/></root>")
    assert [child.tag for child in root] == ["a"]


# ---- the seed's documents and declarations ------------------------------------------------------


@pytest.mark.parametrize("text", [constants.EMPTY_XML, "<root></root>", "<root/>"])
def test_seed_empty_root_is_valid(text):
    root = parse_xml(text)
    assert root.tag == "root"
    assert len(root) == 0


def test_utf8_declaration_works_with_str_input():
    root = parse_xml('<?xml version="1.0" encoding="UTF-8"?>\n<root name="é中"></root>')
    assert root.get("name") == "é中"


def test_utf8_declaration_works_with_bytes_input():
    root = parse_xml('<?xml version="1.0" encoding="UTF-8"?><root name="é中"/>'.encode())
    assert root.get("name") == "é中"


@pytest.mark.parametrize("declared", ["ISO-8859-1", "UTF-16", "ascii", "utf-8"])
def test_str_input_is_text_whatever_encoding_it_declares(declared):
    # A str is already decoded: the declaration must not make the parser decode it a second time.
    root = parse_xml(f'<?xml version="1.0" encoding="{declared}"?><root name="é中"/>')
    assert root.get("name") == "é中"


@pytest.mark.parametrize(
    "text", ["\ufeff<root/>", '\ufeff<?xml version="1.0"?><root/>', b"\xef\xbb\xbf<root/>"]
)
def test_byte_order_mark_is_accepted(text):
    assert parse_xml(text).tag == "root"


def test_bytes_input_honours_its_declared_encoding():
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><root name="é"/>'.encode("latin-1")
    assert parse_xml(data).get("name") == "é"


# ---- XXE: external entities must never be read or fetched ---------------------------------------


@pytest.fixture
def watched_fifo(tmp_path: Path) -> Iterator[tuple[Path, list[bool]]]:
    """A FIFO that records whether anyone opened it for reading (and unblocks that reader)."""
    path = tmp_path / "secret"
    os.mkfifo(path)
    opened: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                time.sleep(0.001)
                continue
            opened.append(True)
            os.write(fd, b"TOP-SECRET-CONTENT")
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield path, opened
    stop.set()
    thread.join(timeout=5)


@pytest.fixture
def listener() -> Iterator[tuple[int, socket.socket]]:
    """A local TCP port that notices any connection attempt."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.05)
    yield server.getsockname()[1], server
    server.close()


def assert_never_connected(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        conn, _ = server.accept()
        conn.close()


def xxe_documents(target: str) -> list[str]:
    return [
        f'<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY xxe SYSTEM "{target}">]>\n<root>&xxe;</root>',
        f'<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY xxe SYSTEM "{target}">]>\n<root a="&xxe;"/>',
        f'<!DOCTYPE root [<!ENTITY % p SYSTEM "{target}"> %p;]><root/>',
        f'<!DOCTYPE root [<!ENTITY % p SYSTEM "{target}"> <!ENTITY % q "<!ENTITY e \'%p;\'>"> %q;]><root>&e;</root>',
        f'<!DOCTYPE root SYSTEM "{target}"><root/>',
        f'<!DOCTYPE root PUBLIC "-//X//Y" "{target}"><root/>',
    ]


def test_xxe_etc_passwd_is_refused_and_not_disclosed():
    for document in xxe_documents("file:///etc/passwd"):
        problem = check_xml(document)
        assert problem is not None, document
        assert "root:" not in problem.message
        with pytest.raises(ValidationError) as exc:
            parse_xml(document)
        assert "root:" not in str(exc.value)


def test_xxe_never_opens_the_named_file(watched_fifo):
    path, opened = watched_fifo
    for document in [*xxe_documents(f"file://{path}"), *xxe_documents(str(path))]:
        problem = check_xml(document)
        assert problem is not None
        assert "TOP-SECRET" not in problem.message
        assert pretty(document) == document
    assert opened == []


def test_xxe_never_fetches_from_the_network(listener):
    port, server = listener
    for document in xxe_documents(f"http://127.0.0.1:{port}/x.dtd"):
        assert check_xml(document) is not None
    assert_never_connected(server)


def test_a_doctype_without_entities_is_refused_too():
    problem = check_xml("<!DOCTYPE root><root/>")
    assert problem is not None
    assert "DOCTYPE" in problem.message


# ---- entity expansion ------------------------------------------------------------------------


def billion_laughs(levels: int) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)]
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n{chr(10).join(entities)}\n]>\n<lolz>&lol{levels};</lolz>'
    )


@pytest.mark.parametrize("levels", [3, 9, 30])
def test_billion_laughs_is_refused_quickly(levels):
    document = billion_laughs(levels)
    started = time.perf_counter()
    problem = check_xml(document)
    elapsed = time.perf_counter() - started
    assert problem is not None
    assert elapsed < 5.0  # a hang guard: expanding 10**30 entities would never finish
    assert "lollollol" not in problem.message


def test_quadratic_blowup_is_refused_quickly():
    big = "x" * 20_000
    document = f'<!DOCTYPE r [<!ENTITY a "{big}">]><root>{"&a;" * 5000}</root>'
    started = time.perf_counter()
    assert check_xml(document) is not None
    assert time.perf_counter() - started < 1.0


def test_billion_laughs_is_not_expanded_by_pretty():
    document = billion_laughs(9)
    assert pretty(document) == document


# ---- the size cap -------------------------------------------------------------------------------


def test_over_the_cap_is_refused_before_parsing(monkeypatch):
    def no_parsing(*args):
        raise AssertionError("the parser must not be reached")

    monkeypatch.setattr(xmlsafe, "_parser", no_parsing)
    document = "<root>" + "x" * 100 + "</root>"
    problem = check_xml(document, max_bytes=50)
    assert problem is not None
    assert "over the limit of 50 bytes" in problem.message


def test_size_cap_comes_from_settings(settings):
    settings.VIAS_MAX_XML_BYTES = 64
    assert check_xml("<root>" + "x" * 45 + "</root>") is None  # 58 bytes
    problem = check_xml("<root>" + "x" * 100 + "</root>")
    assert problem is not None
    assert "64" in problem.message
    with pytest.raises(ValidationError, match="over the limit"):
        parse_xml("<root>" + "x" * 100 + "</root>")


def test_cap_is_inclusive_and_counts_bytes_not_characters():
    document = "<root>éé</root>"  # 15 characters, 17 bytes
    assert check_xml(document, max_bytes=17) is None
    problem = check_xml(document, max_bytes=16)
    assert problem is not None
    assert "17 bytes" in problem.message


def test_huge_document_is_refused_without_parsing_it(settings):
    document = "<root>" + "<a/>" * (settings.VIAS_MAX_XML_BYTES // 4 + 1) + "</root>"
    started = time.perf_counter()
    assert check_xml(document) is not None
    assert time.perf_counter() - started < 0.5


# ---- pretty() -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        constants.EMPTY_XML,
        "<root><a x='1'><b/>text<c>inner</c></a></root>",
        '<?xml version="1.0" encoding="UTF-8"?><root><polygon name="é中"><point x="0" y="1"/></polygon></root>',
        "<root>\n\n      <a>\n</a>   </root>",
    ],
)
def test_pretty_round_trips(text):
    once = pretty(text)
    assert shape(parse_xml(once)) == shape(parse_xml(text))
    assert pretty(once) == once
    if len(parse_xml(text)):
        assert "\n  <" in once


def test_pretty_leaves_what_does_not_parse_unchanged():
    assert pretty("<root><a></root>") == "<root><a></root>"
    assert pretty("") == ""


xml_names = st.sampled_from(["root", "a", "b", "polygon", "point", "pair", "x-y", "n.1"])
attr_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn")), max_size=12)


@st.composite
def trees(draw, depth: int = 0) -> etree._Element:
    element = etree.Element(draw(xml_names))
    for key in draw(st.lists(st.sampled_from(["x", "y", "name", "mode"]), max_size=3, unique=True)):
        element.set(key, draw(attr_values))
    if depth < 3:
        for child in draw(st.lists(trees(depth=depth + 1), max_size=3)):
            element.append(child)
    return element


@hypothesis_settings(max_examples=60, deadline=None)
@given(trees())
def test_pretty_round_trips_random_trees(tree):
    text = etree.tostring(tree, encoding="unicode")
    once = pretty(text)
    assert shape(parse_xml(once)) == shape(tree)
    assert pretty(once) == once
