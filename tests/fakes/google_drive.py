"""The Drive API v3 part of the Google fake (:class:`tests.fakes.google.FakeGoogle` serves it).

:class:`FakeDrive` keeps the files, their permissions and the notifications "sent", and answers the
requests :class:`~tests.fakes.google.FakeGoogle` routes to it (``/drive/v3/...`` and
``/upload/drive/v3/...``) after the token check. It never locks on its own account beyond the lock
FakeGoogle hands it (one lock for the whole fake). What it serves, and how it differs from Drive, is
described in FakeGoogle's module docstring.

Documents (``application/vnd.google-apps.document``) are kept as HTML: the content of the ``<body>`` of
what was uploaded (``text/html``) or one ``<p>`` a line (``text/plain``). Exports are made from that HTML:
``text/html`` wraps it in a whole document with Google-like ``<head>`` and styles, ``text/plain`` is one line
a paragraph/heading/list item (``* item``, ``1. item``), entities decoded, lines joined by CRLF after a
UTF-8 BOM, as Google's plain-text export is; ``text/markdown`` is a plain rendering (``#`` headings, ``*``
lists, ``**bold**``, ``*italic*``, ``[text](url)``).
"""

from __future__ import annotations

import copy
import hashlib
import html
import html.parser
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from googleapiclient.discovery_cache import get_static_doc

from tests.fakes.https import ErrorAnswer

__all__ = [
    "DRIVE_READ_SCOPES",
    "DRIVE_SCOPES",
    "GOOGLE_DOC",
    "DriveError",
    "FakeDrive",
    "RawBody",
    "html_to_markdown",
    "html_to_text",
]

_AUTH = "https://www.googleapis.com/auth/"
DRIVE_SCOPES = frozenset({_AUTH + "drive", _AUTH + "drive.file"})
DRIVE_READ_SCOPES = DRIVE_SCOPES | {_AUTH + "drive.readonly"}
_FULL_SCOPES = frozenset({_AUTH + "drive", _AUTH + "drive.readonly"})
GOOGLE_DOC = "application/vnd.google-apps.document"
GOOGLE_APPS = "application/vnd.google-apps."
FOLDER = "application/vnd.google-apps.folder"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_PROPERTY_BYTES = 124  # key + value, UTF-8, per property
MAX_PROPERTIES = 30  # per map (appProperties are per app; the fake has one app)
_ROLES = ("reader", "commenter", "writer", "fileOrganizer", "organizer", "owner")
_RANK = {role: n for n, role in enumerate(_ROLES)}
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")
_DEFAULT_PERMISSION_FIELDS = ("kind", "id", "type", "role")
_WRITABLE_ON_CREATE = frozenset(
    {
        "name",
        "mimeType",
        "parents",
        "appProperties",
        "properties",
        "description",
        "starred",
        "contentHints",
        "createdTime",
        "modifiedTime",
        "originalFilename",
        "writersCanShare",
        "copyRequiresWriterPermission",
        "folderColorRgb",
        "viewedByMeTime",
    }
)
_WRITABLE_ON_UPDATE = (_WRITABLE_ON_CREATE - {"parents", "createdTime"}) | {"trashed"}
_EXPORTS = {
    "text/html": "text/html",
    "text/plain": "text/plain",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
}
# what Drive also exports Docs to, and the fake does not make
_UNFAKED_EXPORTS = frozenset(
    {
        "application/pdf",
        "application/rtf",
        "application/zip",
        "application/epub+zip",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
_DOC_URL = re.compile(
    r"^https://(?:docs\.google\.com/(?:document|spreadsheets|presentation|file)|drive\.google\.com/file)"
    r"/d/([A-Za-z0-9_-]+)"
)


def _schema_fields() -> dict[str, frozenset[str]]:
    doc = json.loads(get_static_doc("drive", "v3") or "{}")
    schemas = doc.get("schemas", {})
    return {
        name: frozenset(schemas[name]["properties"])
        for name in ("File", "FileList", "Permission", "PermissionList")
    }


_SCHEMA = _schema_fields()


class RawBody(NamedTuple):
    """A success answer that is not JSON: the bytes and their ``Content-Type``."""

    data: bytes
    content_type: str


class DriveError(ErrorAnswer):
    """Drive's error envelope (the same shape as Calendar's: ``error.errors[]``, ``code``, ``message``)."""

    def __init__(self, status: int, reason: str, message: str, **extra: str) -> None:
        item: dict[str, Any] = {"message": message, "domain": "global", "reason": reason, **extra}
        super().__init__(status, {"error": {"code": status, "message": message, "errors": [item]}})


def _not_found(file_id: str) -> DriveError:
    return DriveError(
        404, "notFound", f"File not found: {file_id}.", locationType="parameter", location="fileId"
    )


def _invalid(location: str, message: str = "Invalid Value") -> DriveError:
    return DriveError(400, "invalid", message, locationType="parameter", location=location)


def _no_file_permission() -> DriveError:
    return DriveError(
        403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file."
    )


def _rfc3339(stamp: datetime) -> str:
    stamp = stamp.astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _digits(text: str, length: int = 20) -> str:
    return str(int(hashlib.sha256(text.encode()).hexdigest(), 16))[:length]


def _root_id(email: str) -> str:
    return "0A" + hashlib.sha256(email.lower().encode()).hexdigest()[:17] + "Uk9PVA"


def _new_file_id() -> str:
    return "1" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(43))


def _media_type(content_type: str) -> tuple[str, str]:
    """``text/html; charset=utf-8`` -> (``text/html``, ``utf-8``)."""
    kind, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    return kind.strip().lower(), charset


# --------------------------------------------------------------------------- fields=


def parse_fields(spec: str) -> dict[str, Any]:
    """``id,files(id,name),owners/emailAddress`` -> a tree: name -> subtree (``{}`` meaning everything)."""
    pos = 0

    def parse_list(until: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while True:
            path_start = pos
            while pos < len(spec) and spec[pos] not in ",()":
                pos += 1
            path = spec[path_start:pos].strip()
            sub: dict[str, Any] = {}
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = parse_list(")")
                pos += 1  # ")"
            if not path:
                raise ValueError(spec)
            node = out
            names = path.split("/")
            for name in names[:-1]:
                node = node.setdefault(name, {})
            _merge_tree(node.setdefault(names[-1], {}), sub)
            if pos >= len(spec):
                if until is not None:
                    raise ValueError(spec)
                return out
            if spec[pos] == ")":
                if until != ")":
                    raise ValueError(spec)
                return out
            if spec[pos] == ",":
                pos += 1
                continue
            raise ValueError(spec)

    return parse_list(None)


def _merge_tree(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        _merge_tree(target.setdefault(key, {}), value)


def select_fields(resource: Any, tree: dict[str, Any]) -> Any:
    """What a ``fields`` selection (its parsed tree, ``{}`` meaning all) keeps of a resource."""
    if not tree or "*" in tree:
        return resource
    if isinstance(resource, list):
        return [select_fields(item, tree) for item in resource]
    if not isinstance(resource, dict):
        return resource
    return {key: select_fields(resource[key], sub) for key, sub in tree.items() if key in resource}


def _check_fields(tree: dict[str, Any], schema: str) -> None:
    known = _SCHEMA[schema] | {"*"}
    nested = {"files": "File", "permissions": "Permission"}
    for name, sub in tree.items():
        if name not in known:
            raise DriveError(
                400,
                "invalidParameter",
                f"Invalid field selection {name}",
                locationType="parameter",
                location="fields",
            )
        if sub and name in nested and schema in ("FileList", "PermissionList", "File"):
            _check_fields(sub, nested[name])


def _fields(query: dict[str, str], schema: str) -> dict[str, Any] | None:
    spec = query.get("fields")
    if spec is None or spec.strip() == "":
        return None
    try:
        tree = parse_fields(spec)
    except ValueError:
        raise DriveError(
            400,
            "invalidParameter",
            f"Invalid field selection {spec}",
            locationType="parameter",
            location="fields",
        ) from None
    _check_fields(tree, schema)
    return tree


# --------------------------------------------------------------------------- HTML -> text


_BLOCKS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "blockquote", "pre", "title"}
)
_SKIP = frozenset({"head", "script", "style", "title"})


class _TextWriter(html.parser.HTMLParser):
    """Walks a document's HTML and collects its lines, Google-export style."""

    def __init__(self, markdown: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.markdown = markdown
        self.lines: list[tuple[str, str]] = []  # (kind, text): kind "p", "h", "li"
        self.buffer: list[str] = []
        self.prefix = ""
        self.kind = "p"
        self.pending = False
        self.lists: list[list[Any]] = []  # [tag, counter]
        self.skip = 0
        self.links: list[str] = []
        self.cell = 0

    def _emit(self, force: bool = False) -> None:
        text = re.sub(r" ?\x00 ?", "\t", re.sub(r"\s+", " ", "".join(self.buffer)).strip())
        if text or force or self.pending:
            self.lines.append((self.kind, self.prefix + text))
        self.buffer = []
        self.prefix = ""
        self.kind = "p"
        self.pending = False
        self.cell = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if tag in ("ul", "ol"):
            if "".join(self.buffer).strip():
                self._emit()
            self.lists.append([tag, 0])
            return
        if tag == "br":
            self._emit(force=True)
            return
        if tag in ("td", "th"):
            if self.cell:
                self.buffer.append("\x00")  # a tab between cells, kept through whitespace folding
            self.cell += 1
            return
        if tag in _BLOCKS:
            if "".join(self.buffer).strip():
                keep_prefix = self.prefix if tag == "p" and self.kind == "li" else ""
                self._emit()
                self.prefix = keep_prefix
            if tag == "li":
                depth = max(len(self.lists), 1)
                marker = "* "
                if self.lists and self.lists[-1][0] == "ol":
                    self.lists[-1][1] += 1
                    marker = f"{self.lists[-1][1]}. "
                self.prefix = "    " * (depth - 1) + marker
                self.kind = "li"
            elif tag[0] == "h" and tag[1:].isdigit():
                self.kind = "h"
                if self.markdown:
                    self.prefix = "#" * int(tag[1:]) + " "
            elif self.kind != "li":
                self.kind = "p"
            self.pending = True
            return
        if self.markdown:
            if tag in ("b", "strong"):
                self.buffer.append("**")
            elif tag in ("i", "em"):
                self.buffer.append("*")
            elif tag == "a":
                self.links.append(dict(attrs).get("href") or "")
                self.buffer.append("[")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if tag in ("ul", "ol"):
            if "".join(self.buffer).strip() or self.pending:
                self._emit()
            if self.lists:
                self.lists.pop()
            return
        if tag in _BLOCKS:
            if self.pending or "".join(self.buffer).strip():
                self._emit()
            return
        if self.markdown:
            if tag in ("b", "strong"):
                self.buffer.append("**")
            elif tag in ("i", "em"):
                self.buffer.append("*")
            elif tag == "a" and self.links:
                self.buffer.append(f"]({self.links.pop()})")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.buffer.append(data)

    def result(self) -> list[tuple[str, str]]:
        self.close()
        if "".join(self.buffer).strip():
            self._emit()
        return self.lines


def html_to_text(content: str) -> str:
    """Google's ``text/plain`` export of a Doc kept as ``content`` (HTML)."""
    writer = _TextWriter(markdown=False)
    writer.feed(content)
    return "\ufeff" + "\r\n".join(text for _, text in writer.result())


def html_to_markdown(content: str) -> str:
    """The fake's ``text/markdown`` export of a Doc kept as ``content`` (HTML)."""
    writer = _TextWriter(markdown=True)
    writer.feed(content)
    out: list[str] = []
    previous = ""
    for kind, text in writer.result():
        if out:
            out.append("\n" if kind == "li" and previous == "li" else "\n\n")
        out.append(text)
        previous = kind
    return "".join(out) + "\n"


_HTML_HEAD = (
    '<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type">'
    '<style type="text/css">ol{margin:0;padding:0}table td,table th{padding:0}'
    ".c0{color:#000000;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:11pt;"
    'font-family:"Arial";font-style:normal}.c1{padding-top:0pt;padding-bottom:0pt;line-height:1.15;'
    "orphans:2;widows:2;text-align:left}.doc-content{background-color:#ffffff;max-width:468pt;"
    "padding:72pt 72pt 72pt 72pt}.title{padding-top:0pt;color:#000000;font-size:26pt;padding-bottom:3pt;"
    'font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'li{color:#000000;font-size:11pt;font-family:"Arial"}p{margin:0;color:#000000;font-size:11pt;'
    'font-family:"Arial"}h1{padding-top:20pt;color:#000000;font-size:20pt;padding-bottom:6pt;'
    'font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    "</style></head>"
)


def html_export(content: str) -> str:
    """Google's ``text/html`` export: a whole document (head, styles) around the content."""
    return f'{_HTML_HEAD}<body class="c2 doc-content">{content}</body></html>'


def _body_of(document: str) -> str:
    """What a Doc keeps of uploaded HTML: the content of ``<body>`` (no head, scripts or styles)."""
    match = re.search(r"<body[^>]*>(.*)</body\s*>", document, re.IGNORECASE | re.DOTALL)
    content = match.group(1) if match else document
    if not match:
        content = re.sub(r"<!DOCTYPE[^>]*>", "", content, flags=re.IGNORECASE)
        content = re.sub(r"<head[^>]*>.*?</head\s*>", "", content, flags=re.IGNORECASE | re.DOTALL)
        content = re.sub(r"</?html[^>]*>", "", content, flags=re.IGNORECASE)
    content = re.sub(r"<(script|style)[^>]*>.*?</\1\s*>", "", content, flags=re.IGNORECASE | re.DOTALL)
    return content.strip()


def _text_as_html(text: str) -> str:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


# --------------------------------------------------------------------------- q=


class _Token(NamedTuple):
    kind: str  # "str", "word", "op", "punct"
    value: str


_TOKEN = re.compile(r"\s*(?:'((?:[^'\\]|\\.)*)'|(!=|<=|>=|=|<|>)|([{}(),])|([A-Za-z_][A-Za-z0-9_.]*)|(\S))")


def _tokenize(q: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(q):
        match = _TOKEN.match(q, pos)
        if match is None:
            break
        pos = match.end()
        string, op, punct, word, other = match.groups()
        if string is not None:
            tokens.append(_Token("str", re.sub(r"\\(.)", r"\1", string)))
        elif op is not None:
            tokens.append(_Token("op", op))
        elif punct is not None:
            tokens.append(_Token("punct", punct))
        elif word is not None:
            tokens.append(_Token("word", word))
        elif other is not None:
            raise ValueError(f"unexpected {other!r}")
    return tokens


Predicate = Callable[["_File"], bool]


class _QueryParser:
    """The subset of Drive's query language the fake understands: terms joined by ``and``."""

    def __init__(self, q: str, me: str) -> None:
        self.tokens = _tokenize(q)
        self.pos = 0
        self.me = me

    def _next(self) -> _Token:
        if self.pos >= len(self.tokens):
            raise ValueError("unexpected end of query")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _expect(self, kind: str, value: str | None = None) -> _Token:
        token = self._next()
        if token.kind != kind or (value is not None and token.value.lower() != value.lower()):
            raise ValueError(f"expected {value or kind}, got {token.value!r}")
        return token

    def parse(self) -> list[Predicate]:
        terms = [self._term()]
        while self.pos < len(self.tokens):
            self._expect("word", "and")
            terms.append(self._term())
        return terms

    def _term(self) -> Predicate:
        token = self._next()
        if token.kind == "str":
            value = token.value
            self._expect("word", "in")
            collection = self._expect("word").value
            if collection == "parents":
                return lambda f: value in f.parents or (value == "root" and _root_id(f.owner) in f.parents)
            if collection in ("owners", "writers", "readers"):
                email = self.me if value == "me" else value.lower()
                least = {"owners": "owner", "writers": "writer", "readers": "reader"}[collection]
                return lambda f: _RANK.get(f.permissions.get(email, ""), -1) >= _RANK[least]
            raise ValueError(f"unsupported collection {collection!r}")
        if token.kind != "word":
            raise ValueError(f"unexpected {token.value!r}")
        name = token.value
        if name in ("appProperties", "properties"):
            self._expect("word", "has")
            self._expect("punct", "{")
            self._expect("word", "key")
            self._expect("op", "=")
            key = self._expect("str").value
            self._expect("word", "and")
            self._expect("word", "value")
            self._expect("op", "=")
            wanted = self._expect("str").value
            self._expect("punct", "}")
            if name == "appProperties":
                return lambda f: f.app_properties.get(key) == wanted
            return lambda f: f.properties.get(key) == wanted
        if name in ("trashed", "starred"):
            op = self._expect("op").value
            flag = self._expect("word").value.lower()
            if op not in ("=", "!=") or flag not in ("true", "false"):
                raise ValueError("bad boolean comparison")
            expected = (flag == "true") == (op == "=")
            attr = name
            return lambda f: bool(getattr(f, attr)) == expected
        if name in ("name", "mimeType", "fullText"):
            op_token = self._next()
            value = self._expect("str").value
            if name == "fullText":
                if op_token.value != "contains":
                    raise ValueError("fullText needs contains")
                return lambda f: value.lower() in (f.name + " " + f.text()).lower()
            attr = "name" if name == "name" else "mime_type"
            if op_token.kind == "op" and op_token.value == "=":
                return lambda f: getattr(f, attr) == value
            if op_token.kind == "op" and op_token.value == "!=":
                return lambda f: getattr(f, attr) != value
            if op_token.kind == "word" and op_token.value == "contains":
                if name == "name":
                    return lambda f: (
                        any(w.lower().startswith(value.lower()) for w in re.split(r"\W+", f.name))
                        or (value.lower() in f.name.lower() and " " in value)
                    )
                return lambda f: value in f.mime_type
            raise ValueError(f"unsupported operator {op_token.value!r} for {name}")
        if name in ("modifiedTime", "createdTime"):
            op = self._expect("op").value
            stamp = datetime.fromisoformat(self._expect("str").value.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            attr = "modified" if name == "modifiedTime" else "created"
            compare: dict[str, Callable[[datetime, datetime], bool]] = {
                "=": lambda a, b: a == b,
                "!=": lambda a, b: a != b,
                "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b,
                ">=": lambda a, b: a >= b,
            }
            check = compare[op]
            return lambda f: check(getattr(f, attr), stamp)
        raise ValueError(f"unsupported term {name!r}")


# --------------------------------------------------------------------------- state


@dataclass
class _File:
    file_id: str
    name: str
    mime_type: str
    owner: str
    created: datetime
    modified: datetime
    last_modifier: str
    order: int
    by_app: bool
    html: str = ""  # Docs: the kept HTML
    data: bytes = b""  # other files: the bytes
    version: int = 1
    parents: list[str] = field(default_factory=list)
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    starred: bool = False
    trashed: bool = False
    head_revision: str = ""
    # email (lowercase) -> role; "anyone" and "domain:example.com" for those grantees
    permissions: dict[str, str] = field(default_factory=dict)
    permission_order: list[str] = field(default_factory=list)

    @property
    def is_doc(self) -> bool:
        return self.mime_type == GOOGLE_DOC

    def text(self) -> str:
        return html_to_text(self.html) if self.is_doc else self.data.decode("utf-8", "replace")


@dataclass
class _PageCursor:
    subject: str
    file_ids: list[str]
    offset: int
    fields: dict[str, Any] | None


class FakeDrive:
    """In-memory Drive: files (Docs kept as HTML), permissions, exports, notifications.

    ``clock`` is the fake's strictly increasing clock, ``display_name`` the name of a person the fake's
    directory knows (None: the local part of the address is used), ``lock`` the fake's lock."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        display_name: Callable[[str], str | None],
        lock: threading.RLock,
    ) -> None:
        self._clock = clock
        self._display_name = display_name
        self._lock = lock
        self._files: dict[str, _File] = {}
        self._order = 0
        self._cursors: dict[str, _PageCursor] = {}
        #: (file_id, email) of every sharing notification Drive would have e-mailed
        self.notifications: list[tuple[str, str]] = []
        #: (file_id, email, message) for notifications sent with an ``emailMessage``
        self.notification_messages: list[tuple[str, str, str]] = []
        #: pages of files.list never hold more than this many files (None: pageSize decides)
        self.page_size_cap: int | None = None

    # ------------------------------------------------------------------ helpers for tests

    def put_file(
        self,
        owner: str,
        name: str,
        *,
        html_content: str | None = None,
        mime_type: str = GOOGLE_DOC,
        data: bytes = b"",
        app_properties: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        parents: list[str] | None = None,
        shared_with: dict[str, str] | None = None,
        by_app: bool = True,
    ) -> dict[str, Any]:
        with self._lock:
            stamp = self._clock()
            self._order += 1
            file = _File(
                _new_file_id(),
                name,
                mime_type,
                owner.lower(),
                stamp,
                stamp,
                owner.lower(),
                self._order,
                by_app,
                html=_body_of(html_content or "") if mime_type == GOOGLE_DOC else "",
                data=data,
                parents=list(parents or [_root_id(owner)]),
                app_properties=dict(app_properties or {}),
                properties=dict(properties or {}),
                head_revision=secrets.token_urlsafe(24),
            )
            self._grant(file, owner.lower(), "owner")
            for email, role in (shared_with or {}).items():
                self._grant(file, email.lower(), role)
            self._files[file.file_id] = file
            return self.snapshot(file)

    def files(self, owner: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            chosen = [f for f in self._files.values() if owner is None or f.owner == owner.lower()]
            return [self.snapshot(f) for f in sorted(chosen, key=lambda f: f.order)]

    def snapshot(self, file: _File) -> dict[str, Any]:
        resource = self._resource(file, file.owner)
        resource["content"] = file.html if file.is_doc else file.data.decode("utf-8", "replace")
        return resource

    def content(self, file_id: str) -> str:
        with self._lock:
            file = self._file(file_id)
            return file.html if file.is_doc else file.data.decode("utf-8", "replace")

    def export_text(self, file_id: str) -> str:
        with self._lock:
            return html_to_text(self._file(file_id).html)

    def human_edit(self, file_id: str, html_content: str, editor: str) -> dict[str, Any]:
        with self._lock:
            file = self._file(file_id)
            if _RANK.get(file.permissions.get(editor.lower(), ""), -1) < _RANK["writer"]:
                raise PermissionError(f"{editor} may not edit {file_id} (permissions: {file.permissions})")
            file.html = _body_of(html_content)
            self._changed(file, editor.lower())
            return self.snapshot(file)

    def permissions(self, file_id: str) -> list[dict[str, Any]]:
        with self._lock:
            file = self._file(file_id)
            return [self._permission(file, key) for key in file.permission_order]

    def trash(self, file_id: str) -> None:
        with self._lock:
            file = self._file(file_id)
            file.trashed = True
            self._changed(file, file.owner)

    def file_by_url(self, url: str) -> dict[str, Any] | None:
        """The file a Drive/Docs URL points at (webViewLink, ``.../d/ID/...``, ``open?id=ID``), or None."""
        with self._lock:
            file_id: str | None = None
            match = _DOC_URL.match(url)
            if match:
                file_id = match.group(1)
            else:
                split = urllib.parse.urlsplit(url)
                if split.netloc == "drive.google.com" and split.path in ("/open", "/uc"):
                    file_id = (urllib.parse.parse_qs(split.query).get("id") or [""])[0]
            file = self._files.get(file_id or "")
            return self.snapshot(file) if file is not None else None

    def can_see(self, file_id: str, subject: str) -> bool:
        with self._lock:
            file = self._files.get(file_id)
            return file is not None and self._role(file, subject.lower()) is not None

    def _file(self, file_id: str) -> _File:
        try:
            return self._files[file_id]
        except KeyError:
            raise KeyError(f"no Drive file {file_id!r}") from None

    # ------------------------------------------------------------------ state changes

    def _grant(self, file: _File, key: str, role: str) -> None:
        if key not in file.permissions:
            file.permission_order.append(key)
        file.permissions[key] = role

    def _changed(self, file: _File, by: str, content: bool = True) -> None:
        file.version += 1
        if content:
            file.modified = self._clock()
            file.last_modifier = by
            if not file.is_doc:
                file.head_revision = secrets.token_urlsafe(24)

    def _role(self, file: _File, subject: str) -> str | None:
        best = file.permissions.get(subject)
        candidates = [best, file.permissions.get("anyone")]
        domain = subject.rpartition("@")[2]
        candidates.append(file.permissions.get(f"domain:{domain}"))
        ranked = [r for r in candidates if r is not None]
        return max(ranked, key=lambda r: _RANK[r]) if ranked else None

    # ------------------------------------------------------------------ resources

    def _user(self, email: str, subject: str) -> dict[str, Any]:
        return {
            "kind": "drive#user",
            "displayName": self._display_name(email) or email.partition("@")[0],
            "me": email == subject,
            "permissionId": _digits(email),
            "emailAddress": email,
        }

    def _permission_id(self, key: str) -> str:
        if key == "anyone":
            return "anyoneWithLink"
        return _digits(key)

    def _permission(self, file: _File, key: str) -> dict[str, Any]:
        role = file.permissions[key]
        out: dict[str, Any] = {"kind": "drive#permission", "id": self._permission_id(key)}
        if key == "anyone":
            out |= {"type": "anyone", "role": role, "allowFileDiscovery": False}
        elif key.startswith("domain:"):
            out |= {"type": "domain", "role": role, "domain": key[7:], "allowFileDiscovery": False}
        else:
            out |= {
                "type": "user",
                "role": role,
                "emailAddress": key,
                "displayName": self._display_name(key) or key.partition("@")[0],
                "deleted": False,
                "pendingOwner": False,
            }
        return out

    def _resource(self, file: _File, subject: str) -> dict[str, Any]:
        role = self._role(file, subject) or "reader"
        can_edit = _RANK[role] >= _RANK["writer"]
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": file.file_id,
            "name": file.name,
            "mimeType": file.mime_type,
        }
        if file.description is not None:
            out["description"] = file.description
        out |= {
            "starred": file.starred,
            "trashed": file.trashed,
            "explicitlyTrashed": file.trashed,
            "parents": list(file.parents),
        }
        if file.properties:
            out["properties"] = dict(file.properties)
        if file.app_properties:
            out["appProperties"] = dict(file.app_properties)
        if file.is_doc:
            web = f"https://docs.google.com/document/d/{file.file_id}/edit?usp=drivesdk"
        elif file.mime_type == FOLDER:
            web = f"https://drive.google.com/drive/folders/{file.file_id}"
        else:
            web = f"https://drive.google.com/file/d/{file.file_id}/view?usp=drivesdk"
        out |= {
            "spaces": ["drive"],
            "version": str(file.version),
            "webViewLink": web,
            "iconLink": f"https://drive-thirdparty.googleusercontent.com/16/type/{file.mime_type}",
            "hasThumbnail": False,
            "thumbnailVersion": "0",
            "viewedByMe": subject == file.owner,
            "createdTime": _rfc3339(file.created),
            "modifiedTime": _rfc3339(file.modified),
            "modifiedByMe": file.last_modifier == subject,
            "owners": [self._user(file.owner, subject)],
            "lastModifyingUser": self._user(file.last_modifier, subject),
            "shared": len(file.permissions) > 1,
            "ownedByMe": file.owner == subject,
            "writersCanShare": True,
            "viewersCanCopyContent": True,
            "copyRequiresWriterPermission": False,
            "capabilities": {
                "canEdit": can_edit,
                "canComment": _RANK[role] >= _RANK["commenter"],
                "canShare": can_edit,
                "canTrash": role == "owner",
                "canDelete": role == "owner",
                "canRename": can_edit,
                "canDownload": True,
                "canCopy": True,
                "canReadRevisions": can_edit,
                "canModifyContent": can_edit,
            },
            "isAppAuthorized": file.by_app,
            "quotaBytesUsed": "0" if file.is_doc else str(len(file.data)),
        }
        if can_edit:
            out["permissions"] = [self._permission(file, key) for key in file.permission_order]
            out["permissionIds"] = [self._permission_id(key) for key in file.permission_order]
        if file.is_doc:
            base = f"https://docs.google.com/feeds/download/documents/export/Export?id={file.file_id}"
            out["exportLinks"] = {
                "text/html": f"{base}&exportFormat=html",
                "text/plain": f"{base}&exportFormat=txt",
                "text/markdown": f"{base}&exportFormat=md",
                "application/pdf": f"{base}&exportFormat=pdf",
            }
        elif file.mime_type != FOLDER:
            out |= {
                "size": str(len(file.data)),
                "md5Checksum": hashlib.md5(file.data, usedforsecurity=False).hexdigest(),
                "headRevisionId": file.head_revision,
                "originalFilename": file.name,
            }
        return out

    # ------------------------------------------------------------------ HTTP

    def route(
        self,
        method: str,
        segments: list[str],
        query_multi: dict[str, list[str]],
        headers: Any,
        body: bytes,
        subject: str,
        scopes: frozenset[str] | None,
        record: Any,
    ) -> tuple[int, dict[str, Any] | RawBody]:
        """Answer a Drive request (``segments``: the decoded path after the leading ``/``). ``record``
        (the fake's request record) gets the metadata as ``body`` and uploaded bytes as ``media``."""
        q = {k: v[-1] for k, v in query_multi.items()}
        subject = subject.lower()
        upload = segments[:1] == ["upload"]
        rest = segments[3:] if upload else segments[2:]
        write = method in ("POST", "PATCH", "PUT", "DELETE")
        self._require_scope(scopes, DRIVE_SCOPES if write else DRIVE_READ_SCOPES)
        if rest == ["files"]:
            if method == "POST":
                metadata, media, media_type = self._read_upload(q, headers, body, upload)
                record.body, record.media = copy.deepcopy(metadata), media
                return 200, self._create(subject, q, metadata, media, media_type)
            if method == "GET" and not upload:
                return 200, self._list(subject, scopes, q)
        if len(rest) == 2 and rest[0] == "files":
            file_id = rest[1]
            if method == "GET" and not upload:
                return 200, self._get(subject, scopes, file_id, q)
            if method == "PATCH":
                metadata, media, media_type = self._read_upload(q, headers, body, upload)
                record.body, record.media = copy.deepcopy(metadata), media
                return 200, self._update(subject, scopes, file_id, q, metadata, media, media_type)
        if len(rest) == 3 and rest[0] == "files" and not upload:
            file_id = rest[1]
            if rest[2] == "export" and method == "GET":
                return 200, self._export(subject, scopes, file_id, q)
            if rest[2] == "permissions" and method == "POST":
                payload = self._json(body)
                record.body = copy.deepcopy(payload)
                return 200, self._share(subject, scopes, file_id, q, payload)
            if rest[2] == "permissions" and method == "GET":
                return 200, self._list_permissions(subject, scopes, file_id, q)
        path = "/" + "/".join(segments)
        raise DriveError(404, "notFound", f"Not Found (the fake serves no {method} {path})")

    @staticmethod
    def _require_scope(scopes: frozenset[str] | None, allowed: frozenset[str]) -> None:
        if scopes is not None and not (scopes & allowed):
            raise DriveError(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise DriveError(400, "parseError", "Parse Error") from None
        if not isinstance(payload, dict):
            raise DriveError(400, "parseError", "Parse Error")
        return payload

    def _read_upload(
        self, q: dict[str, str], headers: Any, body: bytes, upload: bool
    ) -> tuple[dict[str, Any], bytes | None, str]:
        if not upload:
            return self._json(body), None, ""
        upload_type = q.get("uploadType")
        content_type = str(headers.get("Content-Type") or "application/octet-stream")
        if upload_type == "media":
            return {}, body, content_type
        if upload_type == "multipart":
            return self._multipart(content_type, body)
        if upload_type == "resumable":
            raise _invalid("uploadType", "The fake serves no resumable uploads (use multipart or media).")
        raise _invalid("uploadType", f"Invalid upload type: {upload_type}")

    def _multipart(self, content_type: str, body: bytes) -> tuple[dict[str, Any], bytes, str]:
        kind, _, params = content_type.partition(";")
        match = re.search(r'boundary="?([^";]+)"?', params)
        if kind.strip().lower() not in ("multipart/related", "multipart/mixed") or match is None:
            raise DriveError(400, "badContent", f"Unsupported content with type: {content_type}")
        delimiter = b"--" + match.group(1).encode()
        chunks = re.split(rb"(?:\r?\n)?" + re.escape(delimiter), body)
        parts: list[tuple[str, bytes]] = []
        for chunk in chunks[1:]:
            if chunk.startswith(b"--"):
                break  # the close delimiter
            chunk = re.sub(rb"^[ \t]*\r?\n", b"", chunk, count=1)  # the rest of the delimiter line
            if chunk.startswith((b"\r\n", b"\n")):  # a part without headers
                head, content = b"", chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:]
            else:
                blank = re.search(rb"\r?\n\r?\n", chunk)
                if blank is None:
                    raise DriveError(400, "badContent", "A part of the multipart body has no content.")
                head, content = chunk[: blank.start()], chunk[blank.end() :]
            part_type = "application/octet-stream"
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-type":
                    part_type = value.strip()
            parts.append((part_type, content))
        if len(parts) != 2:
            raise DriveError(400, "badContent", "A multipart upload needs two parts: metadata, then media.")
        (meta_type, meta), (media_type, media) = parts
        if not meta_type.lower().startswith("application/json"):
            raise DriveError(400, "badContent", f"Unsupported content with type: {meta_type}")
        return self._json(meta), media, media_type

    def _visible(self, subject: str, scopes: frozenset[str] | None, file_id: str) -> _File:
        file = self._files.get(file_id)
        if file is None or self._role(file, subject) is None:
            raise _not_found(file_id)
        if scopes is not None and not (scopes & _FULL_SCOPES) and not file.by_app:
            raise _not_found(file_id)  # drive.file: only files the app made or was given
        return file

    def _answer(self, file: _File, subject: str, q: dict[str, str]) -> dict[str, Any]:
        tree = _fields(q, "File")
        resource = self._resource(file, subject)
        if tree is None:
            return {key: resource[key] for key in _DEFAULT_FILE_FIELDS}
        return dict(select_fields(resource, tree))

    @staticmethod
    def _check_properties(values: Any, name: str) -> dict[str, str | None]:
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise DriveError(400, "invalid", f"Invalid value for {name}", location=name, locationType="other")
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                values[key] = str(value)
            size = len(str(key).encode()) + len(str(value or "").encode())
            if size > MAX_PROPERTY_BYTES:
                raise DriveError(
                    400,
                    "invalidProperty",
                    f"The size of the property {key} exceeds the maximum of {MAX_PROPERTY_BYTES} bytes "
                    "(key and value, UTF-8).",
                    location=f"{name}.{key}",
                    locationType="other",
                )
        return dict(values)

    @staticmethod
    def _apply_properties(target: dict[str, str], changes: dict[str, str | None], name: str) -> None:
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        if len(target) > MAX_PROPERTIES:
            raise DriveError(
                400,
                "invalidProperty",
                f"A file can have at most {MAX_PROPERTIES} {name}.",
                location=name,
                locationType="other",
            )

    @staticmethod
    def _check_writable(metadata: dict[str, Any], writable: frozenset[str]) -> None:
        for key in metadata:
            if key not in writable and key != "kind":
                raise DriveError(
                    403,
                    "fieldNotWritable",
                    "The resource body includes fields which are not directly writable.",
                    location=key,
                    locationType="other",
                )

    def _convert(self, target: str | None, media: bytes, media_type: str) -> tuple[str, str, bytes]:
        """(mimeType, html, data) of an upload: Docs convert text/html and text/plain, others keep bytes."""
        kind, charset = _media_type(media_type)
        if target == GOOGLE_DOC:
            try:
                text = media.decode(charset)
            except (LookupError, UnicodeDecodeError):
                raise DriveError(400, "badContent", "The uploaded content could not be read.") from None
            if kind == "text/html":
                return GOOGLE_DOC, _body_of(text), b""
            if kind == "text/plain":
                return GOOGLE_DOC, _text_as_html(text), b""
            raise DriveError(
                400, "badRequest", f"The fake converts only text/html and text/plain to Docs, not {kind}."
            )
        if target and target.startswith(GOOGLE_APPS):
            raise DriveError(400, "badRequest", f"The fake cannot convert {kind} to {target}.")
        return target or kind, "", media

    def _create(
        self, subject: str, q: dict[str, str], metadata: dict[str, Any], media: bytes | None, media_type: str
    ) -> dict[str, Any]:
        self._check_writable(metadata, _WRITABLE_ON_CREATE)
        if q.get("ignoreDefaultVisibility") not in (None, "true", "false"):
            raise _invalid("ignoreDefaultVisibility")
        app_properties = self._check_properties(metadata.get("appProperties"), "appProperties")
        properties = self._check_properties(metadata.get("properties"), "properties")
        target = metadata.get("mimeType")
        if target is not None and not isinstance(target, str):
            raise DriveError(
                400, "invalid", "Invalid value for mimeType", location="mimeType", locationType="other"
            )
        if media is None:
            mime, content, data = (target or "application/octet-stream"), "", b""
        else:
            mime, content, data = self._convert(target, media, media_type)
        parents = metadata.get("parents")
        if parents is not None:
            if not isinstance(parents, list) or len(parents) > 1:
                raise DriveError(
                    403,
                    "cannotAddParent",
                    "Increasing the number of parents is not allowed.",
                    location="parents",
                    locationType="other",
                )
            parents = [_root_id(subject) if p == "root" else str(p) for p in parents]
            for parent in parents:
                folder = self._files.get(parent)
                if parent != _root_id(subject) and (folder is None or self._role(folder, subject) is None):
                    raise _not_found(parent)
        stamp = self._clock()
        self._order += 1
        name = metadata.get("name") or "Untitled"
        file = _File(
            _new_file_id(),
            str(name),
            mime,
            subject,
            stamp,
            stamp,
            subject,
            self._order,
            True,
            html=content,
            data=data,
            parents=parents or [_root_id(subject)],
            description=metadata.get("description"),
            starred=bool(metadata.get("starred", False)),
            head_revision=secrets.token_urlsafe(24),
        )
        self._apply_properties(file.app_properties, app_properties, "appProperties")
        self._apply_properties(file.properties, properties, "properties")
        self._grant(file, subject, "owner")
        self._files[file.file_id] = file
        return self._answer(file, subject, q)

    def _get(self, subject: str, scopes: frozenset[str] | None, file_id: str, q: dict[str, str]) -> Any:
        file = self._visible(subject, scopes, file_id)
        if q.get("alt") == "media":
            if file.mime_type.startswith(GOOGLE_APPS):
                raise DriveError(
                    403,
                    "fileNotDownloadable",
                    "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                    locationType="parameter",
                    location="alt",
                )
            return RawBody(file.data, file.mime_type)
        return self._answer(file, subject, q)

    def _update(
        self,
        subject: str,
        scopes: frozenset[str] | None,
        file_id: str,
        q: dict[str, str],
        metadata: dict[str, Any],
        media: bytes | None,
        media_type: str,
    ) -> dict[str, Any]:
        file = self._visible(subject, scopes, file_id)
        role = self._role(file, subject) or "reader"
        if _RANK[role] < _RANK["writer"]:
            raise _no_file_permission()
        self._check_writable(metadata, _WRITABLE_ON_UPDATE)
        if "trashed" in metadata and metadata["trashed"] != file.trashed and role != "owner":
            raise _no_file_permission()
        app_properties = self._check_properties(metadata.get("appProperties"), "appProperties")
        properties = self._check_properties(metadata.get("properties"), "properties")
        target = metadata.get("mimeType")
        content_change = media is not None
        if media is not None:
            if file.is_doc:
                mime, content, _ = self._convert(GOOGLE_DOC, media, media_type)
                file.html = content
            else:
                mime, _, data = self._convert(
                    target if isinstance(target, str) else file.mime_type, media, media_type
                )
                file.mime_type, file.data = mime, data
        elif isinstance(target, str) and target != file.mime_type:
            if file.mime_type.startswith(GOOGLE_APPS) or target.startswith(GOOGLE_APPS):
                raise DriveError(
                    400, "badRequest", f"Cannot change the mimeType of {file.mime_type} to {target}."
                )
            file.mime_type = target
        add = [p for p in q.get("addParents", "").split(",") if p]
        remove = [p for p in q.get("removeParents", "").split(",") if p]
        for parent in remove:
            file.parents = [p for p in file.parents if p != parent]
        for parent in add:
            parent_id = _root_id(subject) if parent == "root" else parent
            if parent_id not in file.parents:
                file.parents.append(parent_id)
        self._apply_properties(file.app_properties, app_properties, "appProperties")
        self._apply_properties(file.properties, properties, "properties")
        if "name" in metadata and metadata["name"] is not None:
            file.name = str(metadata["name"])
        if "description" in metadata:
            file.description = metadata["description"]
        if "starred" in metadata:
            file.starred = bool(metadata["starred"])
        if "trashed" in metadata:
            file.trashed = bool(metadata["trashed"])
        touched = content_change or bool(set(metadata) - {"kind"}) or bool(add or remove)
        if touched:
            self._changed(file, subject)
        return self._answer(file, subject, q)

    def _list(self, subject: str, scopes: frozenset[str] | None, q: dict[str, str]) -> dict[str, Any]:
        tree = _fields(q, "FileList")
        page_token = q.get("pageToken")
        try:
            page_size = int(q.get("pageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            raise _invalid("pageSize") from None
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _invalid("pageSize")
        if self.page_size_cap is not None:
            page_size = min(page_size, max(self.page_size_cap, 1))
        if q.get("corpora", "user") not in ("user", "allDrives"):
            raise _invalid("corpora", "The fake serves corpora=user (and allDrives, the same files) only.")
        spaces = set(q.get("spaces", "drive").split(","))
        if not spaces <= {"drive", "appDataFolder", "photos"}:
            raise _invalid("spaces")
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None or cursor.subject != subject:
                raise _invalid("pageToken")
        else:
            try:
                predicates = _QueryParser(q.get("q", ""), subject).parse() if q.get("q", "").strip() else []
            except (ValueError, KeyError) as error:
                raise DriveError(
                    400,
                    "invalid",
                    "Invalid Value",
                    locationType="parameter",
                    location="q",
                    fakeDetail=str(error),
                ) from None
            chosen = []
            if "drive" in spaces:
                for file in self._files.values():
                    if self._role(file, subject) is None:
                        continue
                    if scopes is not None and not (scopes & _FULL_SCOPES) and not file.by_app:
                        continue
                    if all(pred(file) for pred in predicates):
                        chosen.append(file)
            chosen = self._order_by(chosen, q.get("orderBy"))
            cursor = _PageCursor(subject, [f.file_id for f in chosen], 0, tree)
        end = cursor.offset + page_size
        page = [self._files[i] for i in cursor.file_ids[cursor.offset : end] if i in self._files]
        answer: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [self._resource(f, subject) for f in page],
        }
        if end < len(cursor.file_ids):
            token = "~!!~" + secrets.token_urlsafe(32)
            self._cursors[token] = _PageCursor(subject, cursor.file_ids, end, tree)
            answer["nextPageToken"] = token
        if tree is None:
            answer["files"] = [{k: f[k] for k in _DEFAULT_FILE_FIELDS} for f in answer["files"]]
            return answer
        return dict(select_fields(answer, tree))

    @staticmethod
    def _order_by(files: list[_File], order_by: str | None) -> list[_File]:
        ordered = sorted(files, key=lambda f: f.order)
        if not order_by:
            return ordered
        keys: dict[str, Callable[[_File], Any]] = {
            "createdTime": lambda f: f.created,
            "modifiedTime": lambda f: f.modified,
            "recency": lambda f: f.modified,
            "modifiedByMeTime": lambda f: f.modified,
            "viewedByMeTime": lambda f: f.modified,
            "name": lambda f: f.name,
            "name_natural": lambda f: f.name.lower(),
            "folder": lambda f: f.mime_type != FOLDER,
            "starred": lambda f: not f.starred,
            "quotaBytesUsed": lambda f: len(f.data),
            "sharedWithMeTime": lambda f: f.created,
        }
        parts = [p.strip().split() for p in order_by.split(",") if p.strip()]
        for part in reversed(parts):
            if part[0] not in keys or len(part) > 2 or (len(part) == 2 and part[1] != "desc"):
                raise _invalid("orderBy")
            ordered.sort(key=keys[part[0]], reverse=len(part) == 2)
        return ordered

    def _export(
        self, subject: str, scopes: frozenset[str] | None, file_id: str, q: dict[str, str]
    ) -> RawBody:
        file = self._visible(subject, scopes, file_id)
        wanted = q.get("mimeType")
        if not wanted:
            raise DriveError(
                400, "required", "Required parameter: mimeType", locationType="parameter", location="mimeType"
            )
        if not file.is_doc:
            raise DriveError(
                403,
                "fileNotExportable",
                "Export only supports Docs Editors files.",
                locationType="parameter",
                location="fileId",
            )
        kind = _EXPORTS.get(wanted)
        if kind is None:
            detail = " (Drive makes it; the fake does not)" if wanted in _UNFAKED_EXPORTS else ""
            raise DriveError(400, "badRequest", f"The requested conversion is not supported.{detail}")
        if kind == "text/html":
            text = html_export(file.html)
        elif kind == "text/plain":
            text = html_to_text(file.html)
        else:
            text = html_to_markdown(file.html)
        return RawBody(text.encode("utf-8"), f"{kind}; charset=utf-8")

    def _share(
        self,
        subject: str,
        scopes: frozenset[str] | None,
        file_id: str,
        q: dict[str, str],
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        tree = _fields(q, "Permission")
        file = self._visible(subject, scopes, file_id)
        role = self._role(file, subject) or "reader"
        if _RANK[role] < _RANK["writer"]:
            raise _no_file_permission()
        kind, new_role = payload.get("type"), payload.get("role")
        if kind not in ("user", "group", "domain", "anyone"):
            raise DriveError(
                400,
                "required",
                "The permission type field is required.",
                location="permission.type",
                locationType="other",
            )
        if new_role not in _ROLES:
            raise DriveError(
                400,
                "required",
                "The permission role field is required.",
                location="permission.role",
                locationType="other",
            )
        if new_role in ("fileOrganizer", "organizer"):
            raise DriveError(
                400,
                "invalidSharingRequest",
                f"Bad Request. The role {new_role} is only valid for shared drives.",
            )
        transfer = q.get("transferOwnership") == "true"
        if new_role == "owner" and not transfer:
            raise DriveError(
                403,
                "forbidden",
                "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            )
        if new_role == "owner" and role != "owner":
            raise _no_file_permission()
        if kind in ("user", "group"):
            email = str(payload.get("emailAddress") or "").lower()
            if "@" not in email:
                raise DriveError(
                    400,
                    "invalidSharingRequest",
                    "Bad Request. You must specify an email address for user and group permissions.",
                )
            key = email
        elif kind == "domain":
            domain = str(payload.get("domain") or "")
            if not domain:
                raise DriveError(
                    400, "invalidSharingRequest", "Bad Request. A domain permission needs a domain."
                )
            key = f"domain:{domain.lower()}"
        else:
            key = "anyone"
        if key == file.owner and new_role != "owner":
            pass  # the owner keeps owning it; Drive answers with the owner's permission
        elif new_role == "owner":
            self._grant(file, file.owner, "writer")
            file.owner = key
            self._grant(file, key, "owner")
        else:
            self._grant(file, key, new_role)
        self._changed(file, subject, content=False)
        if kind in ("user", "group") and (q.get("sendNotificationEmail") != "false" or new_role == "owner"):
            self.notifications.append((file.file_id, key))
            if q.get("emailMessage"):
                self.notification_messages.append((file.file_id, key, q["emailMessage"]))
        permission = self._permission(file, key)
        if tree is None:
            return {k: permission[k] for k in _DEFAULT_PERMISSION_FIELDS}
        return dict(select_fields(permission, tree))

    def _list_permissions(
        self, subject: str, scopes: frozenset[str] | None, file_id: str, q: dict[str, str]
    ) -> dict[str, Any]:
        tree = _fields(q, "PermissionList")
        file = self._visible(subject, scopes, file_id)
        role = self._role(file, subject) or "reader"
        if _RANK[role] < _RANK["writer"]:
            raise _no_file_permission()
        permissions = [self._permission(file, key) for key in file.permission_order]
        answer: dict[str, Any] = {"kind": "drive#permissionList", "permissions": permissions}
        if tree is None:
            answer["permissions"] = [{k: p[k] for k in _DEFAULT_PERMISSION_FIELDS} for p in permissions]
            return answer
        return dict(select_fields(answer, tree))
