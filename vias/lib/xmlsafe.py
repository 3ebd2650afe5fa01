"""One hardened XML parser for every XML field (calibration, ROI, config, storage config).

Entities are never resolved, nothing is fetched from the network, no DTD is loaded and
huge trees are refused; on top of that a document that declares a DTD at all is refused,
so neither external entities (XXE) nor entity expansion (billion laughs) can get through,
and every document is size-capped before it reaches the parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from lxml import etree


@dataclass(frozen=True)
class XMLProblem:
    """What is wrong with a document, and where (1-based line and column, 0 when unknown)."""

    message: str
    line: int = 0
    column: int = 0


def _parser(text: str | bytes = b"") -> etree.XMLParser:
    # A str is already decoded and reaches lxml as UTF-8: its declared encoding must not apply.
    return etree.XMLParser(
        encoding="utf-8" if isinstance(text, str) else None,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _as_bytes(text: str | bytes) -> bytes:
    # lxml refuses str input that carries an encoding declaration, so always hand it bytes.
    return text.encode("utf-8") if isinstance(text, str) else text


def parse_xml(text: str | bytes, max_bytes: int | None = None) -> etree._Element:
    """Parse `text` safely or raise ValidationError saying what is wrong and where."""
    problem, root = _parse(text, max_bytes)
    if problem is not None:
        raise ValidationError(format_problem(problem), code="xml")
    assert root is not None
    return root


def check_xml(text: str | bytes, max_bytes: int | None = None) -> XMLProblem | None:
    """The problem with `text`, or None when it is a safe, well-formed document."""
    return _parse(text, max_bytes)[0]


def format_problem(problem: XMLProblem) -> str:
    if problem.line:
        return str(
            _("XML error at line %(line)d, column %(column)d: %(message)s")
            % {"line": problem.line, "column": problem.column, "message": problem.message}
        )
    return str(problem.message)


def _parse(text: str | bytes, max_bytes: int | None) -> tuple[XMLProblem | None, etree._Element | None]:
    if text is None or (isinstance(text, str | bytes) and not text.strip()):
        return XMLProblem(str(_("the XML document is empty"))), None
    if not isinstance(text, str | bytes):
        return XMLProblem(str(_("an XML document must be a string"))), None
    data = _as_bytes(text)
    cap = max_bytes if max_bytes is not None else settings.VIAS_MAX_XML_BYTES
    if len(data) > cap:
        return XMLProblem(
            str(_("the XML document is %(size)d bytes, over the limit of %(cap)d bytes"))
            % {"size": len(data), "cap": cap}
        ), None
    try:
        root = etree.fromstring(data, parser=_parser(text))
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno or 0, 0)
        return XMLProblem(str(exc.msg).split(", line")[0], line or 0, column or 0), None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        return XMLProblem(str(_("a DOCTYPE or entity declaration is not allowed")), 1, 1), None
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        return XMLProblem(str(_("entity references are not allowed")), 1, 1), None
    return None, root


def pretty(text: str) -> str:
    """The document indented for people, or unchanged when it does not parse."""
    if check_xml(text) is not None:
        return text
    root = etree.fromstring(_as_bytes(text), parser=_parser(text))
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")
