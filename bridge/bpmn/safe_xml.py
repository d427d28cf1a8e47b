"""Reading untrusted XML safely: every BPMN file the bridge reads (to deploy, lint or draw) goes through here.

The XML parser is hardened: no DTD (so no entity expansion or external entities), no network,
bounded size, depth and element count. Such files are refused with an issue, never resolved.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from bridge.bpmn.model import Issue

MAX_BYTES = 5 * 1024 * 1024
# libxml2's own nesting limit without XML_PARSE_HUGE: the parser stops there, before it builds the tree.
MAX_DEPTH = 256
MAX_ELEMENTS = 100_000

# XML declaration, processing instructions, comments and white space: what may come before a DOCTYPE.
_PROLOG = re.compile(rb"(?:\s*(?:<\?.*?\?>|<!--.*?-->))*\s*", re.S)
_DOCTYPE_MESSAGE = ("DOCTYPE declarations are not allowed in BPMN files (they enable entity expansion and external "
                    "entities); remove the <!DOCTYPE ...> block")

_PARSERS = threading.local()


def safe_parser() -> etree.XMLParser:
    """One hardened parser per thread (an lxml parser must not be shared between threads)."""
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
            # Nothing the reader uses lives in comments, PIs or whitespace-only text (it strips what it
            # reads), and a tree without them is quicker to build and to walk.
            remove_pis=True, remove_comments=True, remove_blank_text=True, collect_ids=False)
    return parser


def read_xml(data: bytes, filename: str) -> tuple[etree._Element | None, list[Issue]]:
    """(root element, issues); the root is None when the file is refused, and the issues say why."""
    if len(data) > MAX_BYTES:
        return _refusal(filename, "TOO_LARGE", f"file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    readable = _byte_scan_reads(data)
    if readable and (doctype_at := _prolog_doctype(data)) is not None:
        return _refusal(filename, "DOCTYPE_FORBIDDEN", _DOCTYPE_MESSAGE, data[:doctype_at].count(b"\n") + 1)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as err:
        if "Excessive depth" in err.msg:
            return _refusal(filename, "TOO_DEEP", f"elements nest more than {MAX_DEPTH} deep", err.lineno)
        return _refusal(filename, "XML_MALFORMED", f"not well-formed XML: {err.msg}", err.lineno)
    if not readable and _has_doctype(root):  # UTF-16, UTF-32, EBCDIC, or a file not starting with '<'
        return _refusal(filename, "DOCTYPE_FORBIDDEN", _DOCTYPE_MESSAGE, 1)
    # An element takes at least 4 bytes (<a/>), so a smaller file needs no count.
    if len(data) >= 4 * MAX_ELEMENTS and (count := int(_COUNT_ELEMENTS(root))) > MAX_ELEMENTS:
        return _refusal(filename, "TOO_MANY_ELEMENTS", f"{count:,} elements; the limit is {MAX_ELEMENTS:,}")
    return root, []


def _refusal(filename: str, code: str, message: str, line: int | None = None) -> tuple[None, list[Issue]]:
    return None, [Issue(filename, line, None, code, message)]


def _has_doctype(root) -> bool:
    info = root.getroottree().docinfo
    return bool(info.doctype) or info.internalDTD is not None


def _byte_scan_reads(data: bytes) -> bool:
    """Whether the file starts with an ASCII '<' (after a UTF-8 BOM), so that a scan of its bytes can see a
    DOCTYPE. A NUL next to it means UTF-16 or UTF-32 even without a BOM."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    return data[start:start + 1] == b"<" and data[start + 1:start + 2] not in (b"\x00", b"")


def _prolog_doctype(data: bytes) -> int | None:
    """Offset of a <!DOCTYPE before the root element, found without parsing anything."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    prolog = _PROLOG.match(data, start)
    position = prolog.end() if prolog else start
    return position if data[position:position + 9].upper() == b"<!DOCTYPE" else None


_COUNT_ELEMENTS = etree.XPath("count(//*)")
