"""OneDrive for Business (``driveItem``) in the Graph fake: the store and the HTTP handling behind
``/users/{u}/drive/...`` and ``/me/drive/...`` of :class:`tests.fakes.graph.FakeGraph`.

:class:`DriveStore` belongs to one ``FakeGraph`` (one server, one token endpoint, one fault injection,
one request log): the fake routes drive paths here and exposes the test helpers (``drive_items``,
``item_content``, ``put_item``, ``human_edit_item``, ``item_permissions``, ``sent_invitations``). What
is served, and how it differs from the real service, is described in the module doc of
:mod:`tests.fakes.graph` ("OneDrive").
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.graph import FakeGraph, RequestRecord, _AccessToken, _Error, _User
    from tests.fakes.https import RequestHandler

__all__ = ["DRIVE_READ_ROLES", "DRIVE_WRITE_ROLES", "DriveStore", "RawBody"]

#: Application permissions that let an app-only token write (read) any user's OneDrive.
DRIVE_WRITE_ROLES = frozenset({"Files.ReadWrite.All", "Sites.ReadWrite.All"})
DRIVE_READ_ROLES = DRIVE_WRITE_ROLES | {"Files.Read.All", "Sites.Read.All"}
#: Delegated scopes for the signed-in user's own OneDrive (``/me/drive``).
DRIVE_WRITE_SCOPES = frozenset({"Files.ReadWrite", "Files.ReadWrite.All", "Sites.ReadWrite.All"})
DRIVE_READ_SCOPES = DRIVE_WRITE_SCOPES | {"Files.Read", "Files.Read.All", "Sites.Read.All"}

CONFLICT_BEHAVIOR = "@microsoft.graph.conflictBehavior"
_INVALID_NAME = re.compile(r'["*:<>?/\\|]')
_ROOT_PATH = re.compile(r"root:(?P<path>/[^:]*)(?::(?P<tail>(?:/.*)?))?")
_MIME_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".csv": "text/csv",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".loop": "application/octet-stream",
}
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class RawBody:
    """An answer that is not JSON: the bytes of a download, with their media type."""

    data: bytes
    content_type: str


@dataclass
class _Grant:
    ident: str
    email: str
    display_name: str
    user_id: str | None
    roles: list[str]
    sign_in_required: bool


@dataclass
class _Item:
    ident: str
    name: str
    parent: str | None  # None: the root
    folder: bool
    guid: str
    created: str
    created_by: dict[str, Any]
    content: bytes = b""
    mime_type: str = "application/octet-stream"
    version: int = 1
    content_version: int = 1
    modified: str = ""
    modified_by: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)  # by lower-case email
    download_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def etag(self) -> str:
        return f'"{{{self.guid}}},{self.version}"'

    @property
    def ctag(self) -> str:
        return f'"c:{{{self.guid}}},{self.content_version}"'


@dataclass
class _Drive:
    ident: str
    owner_id: str
    root: str
    items: dict[str, _Item] = field(default_factory=dict)


def _item_id() -> str:
    return "01" + "".join(secrets.choice(_BASE32) for _ in range(32))


def _membership_id(email: str) -> str:
    """SharePoint's claim of a user as Graph shows it in a permission id."""
    return base64.b64encode(f"i:0#.f|membership|{email.lower()}".encode()).decode().rstrip("=")


def _bare_tag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


class DriveStore:
    """Every user's OneDrive in one :class:`~tests.fakes.graph.FakeGraph` (called with its lock held)."""

    def __init__(self, host: FakeGraph) -> None:
        self._host = host
        self._drives: dict[str, _Drive] = {}  # by owner's user id
        self._downloads: dict[str, tuple[str, str]] = {}  # download key -> (owner id, item id)

    # ------------------------------------------------------------------ helpers for tests

    def items(self, user: str) -> list[dict[str, Any]]:
        drive, owner = self._drive_of(user)
        out = []
        for item in drive.items.values():
            if item.ident == drive.root:
                continue
            view = self._view(drive, owner, item)
            view["path"] = self._path(drive, item)
            out.append(view)
        return sorted(out, key=lambda v: str(v["path"]).lower())

    def content(self, user: str, path: str) -> bytes:
        drive, _ = self._drive_of(user)
        item = self._by_path(drive, self._split(path, error=ValueError))
        if item is None or item.folder:
            raise KeyError(f"no file {path!r} in the OneDrive of {user}")
        return item.content

    def put(self, user: str, path: str, content: bytes, editor: str | None) -> dict[str, Any]:
        drive, owner = self._drive_of(user)
        author = self._person(editor) if editor else self._person(owner.email)
        names = self._split(path, error=ValueError)
        item = self._by_path(drive, names)
        if item is None:
            item = self._create(drive, names, author, content, None)
        else:
            self._write(item, content, author)
        return self._view(drive, owner, item)

    def human_edit(self, user: str, item_id: str, content: bytes, editor: str) -> dict[str, Any]:
        drive, owner = self._drive_of(user)
        item = drive.items.get(item_id)
        if item is None or item.folder:
            raise KeyError(f"no file {item_id!r} in the OneDrive of {user}")
        self._write(item, content, self._person(editor))
        return self._view(drive, owner, item)

    def permissions(self, user: str, item_id: str) -> list[dict[str, Any]]:
        drive, owner = self._drive_of(user)
        item = drive.items.get(item_id)
        if item is None:
            raise KeyError(f"no item {item_id!r} in the OneDrive of {user}")
        return self._permissions(owner, item)

    # ------------------------------------------------------------------ HTTP

    def route(
        self,
        method: str,
        token: _AccessToken,
        user_segment: str,
        raw_rest: str,
        query: dict[str, list[str]],
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        """``raw_rest``: the (still percent-encoded) path after ``/drive/`` (empty for the drive)."""
        writing = method in ("PUT", "POST", "PATCH", "DELETE")
        owner = self._access(token, user_segment, writing)
        drive = self._drive(owner)
        if raw_rest in ("", "/"):
            if method != "GET":
                raise self._host._not_served(method, raw_rest)
            return 200, self._drive_view(drive, owner), {}
        match = _ROOT_PATH.fullmatch(raw_rest)
        if raw_rest == "root" or (match is not None and (match.group("tail") or "") in ("", "/")):
            item = self._root_or_path(drive, match)
            if method == "GET":
                return self._get_item(drive, owner, item)
            if method == "DELETE":
                return self._delete_item(drive, item, handler)
            raise self._host._not_served(method, raw_rest)
        if match is not None and match.group("tail") == "/content":
            names = self._split_raw(match.group("path"))
            if method == "PUT":
                return self._upload(drive, owner, token, names, None, handler, query, body)
            if method == "GET":
                found = self._by_path(drive, names)
                if found is None:
                    raise self._not_found()
                return self._redirect(drive, found)
            raise self._host._not_served(method, raw_rest)
        parts = raw_rest.split("/")
        if parts[0] == "items" and len(parts) >= 2:
            by_id = drive.items.get(urllib.parse.unquote(parts[1]))
            if by_id is None:
                raise self._not_found()
            item, tail = by_id, parts[2:]
            if tail == [] and method == "GET":
                return self._get_item(drive, owner, item)
            if tail == [] and method == "DELETE":
                return self._delete_item(drive, item, handler)
            if tail == ["content"] and method == "GET":
                return self._redirect(drive, item)
            if tail == ["content"] and method == "PUT":
                return self._upload(drive, owner, token, None, item, handler, query, body)
            if tail == ["invite"] and method == "POST":
                return self._invite(drive, owner, token, item, body, record)
            if tail == ["permissions"] and method == "GET":
                return (
                    200,
                    {
                        "@odata.context": f"{self._host.graph_endpoint}/$metadata#Collection(permission)",
                        "value": self._permissions(owner, item),
                    },
                    {},
                )
            if len(tail) == 2 and tail[0] == "permissions" and method == "DELETE":
                return self._revoke(owner, item, urllib.parse.unquote(tail[1]))
        raise self._host._not_served(method, raw_rest)

    def download(self, key: str) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        """``GET /_download/{key}``: a pre-authenticated download URL (no Authorization needed)."""
        found = self._downloads.get(key)
        drive = self._drives.get(found[0]) if found else None
        item = drive.items.get(found[1]) if drive and found else None
        if item is None or item.folder:
            raise self._error(404, "itemNotFound", "The resource could not be found.")
        return 200, RawBody(item.content, item.mime_type), {"ETag": item.etag, "CTag": item.ctag}

    # ------------------------------------------------------------------ HTTP: items

    def _get_item(
        self, drive: _Drive, owner: _User, item: _Item
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        return 200, self._view(drive, owner, item, context=True), {"ETag": item.etag}

    def _redirect(
        self, drive: _Drive, item: _Item
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        if item.folder:
            raise self._error(400, "invalidRequest", "The item is a folder: it has no content.")
        return 302, None, {"Location": self._download_url(drive, item)}

    def _delete_item(
        self, drive: _Drive, item: _Item, handler: RequestHandler
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        if item.ident == drive.root:
            raise self._error(403, "accessDenied", "The root of a drive cannot be deleted.")
        self._check_if_match(item, handler)
        doomed = [item.ident]
        while doomed:
            ident = doomed.pop()
            drive.items.pop(ident, None)
            doomed.extend(i.ident for i in drive.items.values() if i.parent == ident)
        return 204, None, {}

    def _upload(
        self,
        drive: _Drive,
        owner: _User,
        token: _AccessToken,
        names: list[str] | None,
        item: _Item | None,
        handler: RequestHandler,
        query: dict[str, list[str]],
        body: bytes,
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        behavior = (query.get(CONFLICT_BEHAVIOR) or ["replace"])[-1]
        if behavior not in ("fail", "replace", "rename"):
            raise self._error(400, "invalidRequest", f"Invalid value '{behavior}' for {CONFLICT_BEHAVIOR}.")
        author = self._author(token)
        content_type = str(handler.headers.get("Content-Type") or "")
        if item is None:
            assert names is not None
            item = self._by_path(drive, names)
            if item is None:
                if handler.headers.get("If-Match") is not None:
                    raise self._modified()
                created = self._create(drive, names, author, body, content_type)
                return 201, self._view(drive, owner, created, context=True), {"ETag": created.etag}
            if behavior == "fail":
                raise self._error(
                    409, "nameAlreadyExists", f"The specified item name already exists. Name: {item.name}"
                )
            if behavior == "rename":
                parent = drive.items[item.parent or drive.root]
                name = self._free_name(drive, parent.ident, item.name)
                created = self._create(
                    drive, [*self._names_of(drive, parent), name], author, body, content_type
                )
                return 201, self._view(drive, owner, created, context=True), {"ETag": created.etag}
        if item.folder:
            raise self._error(409, "nameAlreadyExists", f"A folder named {item.name} already exists.")
        self._check_if_match(item, handler)
        self._write(item, body, author)
        return 200, self._view(drive, owner, item, context=True), {"ETag": item.etag}

    def _check_if_match(self, item: _Item, handler: RequestHandler) -> None:
        if_match = handler.headers.get("If-Match")
        if if_match is None:
            return
        # one tag (an eTag holds a comma itself, so no list of tags), with or without quotes or W/
        if if_match.strip() != "*" and _bare_tag(if_match) not in (
            _bare_tag(item.etag),
            _bare_tag(item.ctag),
        ):
            raise self._modified()

    # ------------------------------------------------------------------ HTTP: sharing

    def _invite(
        self,
        drive: _Drive,
        owner: _User,
        token: _AccessToken,
        item: _Item,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise self._error(400, "invalidRequest", "Invalid JSON in the request body.") from None
        if not isinstance(request, dict):
            raise self._error(400, "invalidRequest", "The request body must be a JSON object.")
        record.body = request
        recipients = request.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise self._error(400, "invalidRequest", "At least one recipient is required.")
        roles = request.get("roles")
        if not isinstance(roles, list) or len(roles) != 1 or roles[0] not in ("read", "write"):
            raise self._error(400, "invalidRequest", 'roles must be ["read"] or ["write"].')
        message = request.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > 2000):
            raise self._error(400, "invalidRequest", "The message must be text of at most 2000 characters.")
        send = request.get("sendInvitation", self._host.send_invitation_default)
        sign_in = request.get("requireSignIn", False)
        if not isinstance(send, bool) or not isinstance(sign_in, bool):
            raise self._error(400, "invalidRequest", "sendInvitation and requireSignIn must be booleans.")
        emails = []
        for recipient in recipients:
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not isinstance(email, str) or "@" not in email:
                raise self._error(400, "invalidRequest", "The fake takes recipients by email only.")
            if self._host._find_user(email) is None and token.user_id is None:
                raise self._error(403, "accessDenied", "New guests can't be invited using app-only access.")
            emails.append(email)
        answered = []
        for email in emails:
            if email.lower() == owner.email.lower():
                answered.append(self._owner_permission(owner))
                continue
            grant = item.grants.get(email.lower())
            if grant is None:
                user = self._host._find_user(email)
                grant = _Grant(
                    _membership_id(email),
                    user.email if user else email,
                    user.display_name if user else email,
                    user.user_id if user else None,
                    list(roles),
                    sign_in,
                )
                item.grants[email.lower()] = grant
            elif roles == ["write"]:
                grant.roles = ["write"]
            if send:
                self._host.sent_invitations.append((item.ident, grant.email))
            answered.append(self._grant_view(grant))
        return (
            200,
            {
                "@odata.context": f"{self._host.graph_endpoint}/$metadata#Collection(permission)",
                "value": answered,
            },
            {},
        )

    def _revoke(
        self, owner: _User, item: _Item, permission_id: str
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        if permission_id == _membership_id(owner.email):
            raise self._error(403, "accessDenied", "The owner's permission cannot be removed.")
        for key, grant in list(item.grants.items()):
            if grant.ident == permission_id:
                del item.grants[key]
                return 204, None, {}
        raise self._not_found()

    def _permissions(self, owner: _User, item: _Item) -> list[dict[str, Any]]:
        return [self._owner_permission(owner), *(self._grant_view(g) for g in item.grants.values())]

    def _owner_permission(self, owner: _User) -> dict[str, Any]:
        return {
            "id": _membership_id(owner.email),
            "roles": ["owner"],
            "grantedToV2": {
                "user": {"id": owner.user_id, "email": owner.email, "displayName": owner.display_name}
            },
        }

    def _grant_view(self, grant: _Grant) -> dict[str, Any]:
        user: dict[str, Any] = {"email": grant.email, "displayName": grant.display_name}
        if grant.user_id is not None:
            user["id"] = grant.user_id
        return {
            "id": grant.ident,
            "roles": list(grant.roles),
            "grantedToV2": {"user": user},
            "invitation": {"email": grant.email, "signInRequired": grant.sign_in_required},
        }

    # ------------------------------------------------------------------ access

    def _access(self, token: _AccessToken, user_segment: str, writing: bool) -> _User:
        """401 is done; now 403 (no permission), 404 (no user), 403 (someone else's, delegated), 404 (no
        OneDrive)."""
        if token.user_id is None:
            needed = DRIVE_WRITE_ROLES if writing else DRIVE_READ_ROLES
        else:
            needed = DRIVE_WRITE_SCOPES if writing else DRIVE_READ_SCOPES
        if not (token.permissions & needed):
            raise self._error(403, "accessDenied", "Access denied")
        user = self._host._find_user(user_segment)
        if user is None:
            raise self._error(404, "itemNotFound", f"The user '{user_segment}' was not found.")
        if token.user_id is not None and token.user_id != user.user_id:
            raise self._error(403, "accessDenied", "Access denied")
        if not user.onedrive:
            raise self._error(404, "ResourceNotFound", "User's mysite not found.")
        return user

    def _author(self, token: _AccessToken) -> dict[str, Any]:
        if token.user_id is not None:
            return self._person(self._host._users[token.user_id].email)
        return {
            "application": {"id": token.client_id, "displayName": token.client_id},
            "user": {"displayName": "SharePoint App"},
        }

    def _person(self, who: str) -> dict[str, Any]:
        user = self._host._find_user(who)
        if user is not None:
            return {"user": {"email": user.email, "id": user.user_id, "displayName": user.display_name}}
        local = who.partition("@")[0]
        name = " ".join(p.capitalize() for p in re.split(r"[._-]", local) if p) or who
        return {"user": {"email": who, "displayName": name}}

    # ------------------------------------------------------------------ state

    def _drive_of(self, user: str) -> tuple[_Drive, _User]:
        found = self._host._find_user(user)
        if found is None:
            raise KeyError(f"no user {user!r}: call add_user first")
        if not found.onedrive:
            raise KeyError(f"{user} has no OneDrive")
        return self._drive(found), found

    def _drive(self, owner: _User) -> _Drive:
        drive = self._drives.get(owner.user_id)
        if drive is None:
            stamp = self._host._stamp_now()
            root = _Item(_item_id(), "root", None, True, str(uuid.uuid4()).upper(), stamp, {}, modified=stamp)
            raw = secrets.token_bytes(48)
            drive = _Drive(
                "b!" + base64.urlsafe_b64encode(raw).decode().rstrip("="), owner.user_id, root.ident
            )
            drive.items[root.ident] = root
            self._drives[owner.user_id] = drive
        return drive

    def _split(self, path: str, *, error: type[Exception]) -> list[str]:
        names = [n for n in path.strip("/").split("/")]
        for name in names:
            if not name or _INVALID_NAME.search(name) or name != name.strip():
                raise error(f"invalid path {path!r}")
        return names

    def _split_raw(self, raw: str) -> list[str]:
        names = [urllib.parse.unquote(n) for n in raw.strip("/").split("/")]
        for name in names:
            if not name or _INVALID_NAME.search(name) or name != name.strip():
                raise self._error(
                    400, "invalidRequest", f"The provided name '{name}' contains invalid characters."
                )
        return names

    def _root_or_path(self, drive: _Drive, match: re.Match[str] | None) -> _Item:
        if match is None:
            return drive.items[drive.root]
        item = self._by_path(drive, self._split_raw(match.group("path")))
        if item is None:
            raise self._not_found()
        return item

    def _child(self, drive: _Drive, parent: str, name: str) -> _Item | None:
        folded = name.casefold()
        for item in drive.items.values():
            if item.parent == parent and item.name.casefold() == folded:
                return item
        return None

    def _by_path(self, drive: _Drive, names: list[str]) -> _Item | None:
        current: _Item | None = drive.items[drive.root]
        for name in names:
            assert current is not None
            current = self._child(drive, current.ident, name)
            if current is None:
                return None
        return current

    def _names_of(self, drive: _Drive, item: _Item) -> list[str]:
        names: list[str] = []
        while item.parent is not None:
            names.append(item.name)
            item = drive.items[item.parent]
        return names[::-1]

    def _path(self, drive: _Drive, item: _Item) -> str:
        return "/".join(self._names_of(drive, item))

    def _free_name(self, drive: _Drive, parent: str, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, dot, ext = name, "", ""
        number = 1
        while True:
            candidate = f"{stem} {number}{dot}{ext}"
            if self._child(drive, parent, candidate) is None:
                return candidate
            number += 1

    def _create(
        self,
        drive: _Drive,
        names: list[str],
        author: dict[str, Any],
        content: bytes,
        content_type: str | None,
    ) -> _Item:
        stamp = self._host._stamp_now()
        parent = drive.items[drive.root]
        for name in names[:-1]:
            child = self._child(drive, parent.ident, name)
            if child is None:
                child = _Item(_item_id(), name, parent.ident, True, str(uuid.uuid4()).upper(), stamp, author)
                child.modified, child.modified_by = stamp, author
                drive.items[child.ident] = child
            elif not child.folder:
                raise self._error(409, "nameAlreadyExists", f"A file named {name} is in the way.")
            parent = child
        name = names[-1]
        extension = name[name.rfind(".") :].lower() if "." in name else ""
        mime = _MIME_TYPES.get(extension) or (content_type or "").split(";")[0].strip()
        item = _Item(
            _item_id(),
            name,
            parent.ident,
            False,
            str(uuid.uuid4()).upper(),
            stamp,
            author,
            content=bytes(content),
            mime_type=mime or "application/octet-stream",
            modified=stamp,
            modified_by=author,
        )
        drive.items[item.ident] = item
        self._downloads[item.download_key] = (drive.owner_id, item.ident)
        return item

    def _write(self, item: _Item, content: bytes, author: dict[str, Any]) -> None:
        item.content = bytes(content)
        item.version += 1
        item.content_version += 1
        item.modified = self._host._stamp_now()
        item.modified_by = author

    # ------------------------------------------------------------------ views

    def _download_url(self, drive: _Drive, item: _Item) -> str:
        self._downloads[item.download_key] = (drive.owner_id, item.ident)
        return f"{self._host.base_url}/_download/{item.download_key}"

    def _web_url(self, owner: _User, path: str) -> str:
        domain = owner.email.lower().partition("@")[2]
        tenant = domain.split(".")[0] or "contoso"
        person = re.sub(r"[^a-z0-9]", "_", owner.email.lower())
        quoted = urllib.parse.quote(path)
        return f"https://{tenant}-my.sharepoint.com/personal/{person}/Documents" + (
            f"/{quoted}" if path else ""
        )

    def _size(self, drive: _Drive, item: _Item) -> int:
        if not item.folder:
            return len(item.content)
        return sum(self._size(drive, child) for child in drive.items.values() if child.parent == item.ident)

    def _drive_view(self, drive: _Drive, owner: _User) -> dict[str, Any]:
        return {
            "@odata.context": f"{self._host.graph_endpoint}/$metadata#drives/$entity",
            "id": drive.ident,
            "driveType": "business",
            "name": "OneDrive",
            "webUrl": self._web_url(owner, ""),
            "owner": {"user": {"email": owner.email, "id": owner.user_id, "displayName": owner.display_name}},
        }

    def _view(self, drive: _Drive, owner: _User, item: _Item, *, context: bool = False) -> dict[str, Any]:
        path = self._path(drive, item)
        view: dict[str, Any] = {}
        if context:
            view["@odata.context"] = (
                f"{self._host.graph_endpoint}/$metadata#users('{owner.user_id}')/drive/items/$entity"
            )
        if not item.folder:
            view["@microsoft.graph.downloadUrl"] = self._download_url(drive, item)
        view.update(
            {
                "createdDateTime": item.created,
                "eTag": item.etag,
                "id": item.ident,
                "lastModifiedDateTime": item.modified,
                "name": item.name,
                "webUrl": self._web_url(owner, path),
                "cTag": item.ctag,
                "size": self._size(drive, item),
                "createdBy": copy.deepcopy(item.created_by),
                "lastModifiedBy": copy.deepcopy(item.modified_by),
            }
        )
        if item.parent is not None:
            parent = drive.items[item.parent]
            parent_path = self._path(drive, parent)
            view["parentReference"] = {
                "driveType": "business",
                "driveId": drive.ident,
                "id": parent.ident,
                "path": "/drive/root:" + (f"/{parent_path}" if parent_path else ""),
            }
        else:
            view["root"] = {}
        if item.folder:
            view["folder"] = {"childCount": sum(1 for i in drive.items.values() if i.parent == item.ident)}
        else:
            view["file"] = {"mimeType": item.mime_type}
        return view

    # ------------------------------------------------------------------ errors

    def _error(self, status: int, code: str, message: str) -> _Error:
        return self._host._graph_error(status, code, message)

    def _not_found(self) -> _Error:
        return self._error(404, "itemNotFound", "The resource could not be found.")

    def _modified(self) -> _Error:
        return self._error(
            412,
            "resourceModified",
            "ETag does not match current item's value",
        )
