"""The HTTP API under /api: accounts, rooms, history and REST sends (JSON in, JSON out)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, wraps
from importlib.metadata import version
from typing import Any, Final, TypeVar

from aiohttp import web
from msgspec import UNSET, Struct

from parley.core import DM, Action, check_room_ref, ref_of
from parley.protocol import (
    HTTP_STATUS,
    Change,
    Delete,
    Edit,
    ErrorCode,
    File,
    Message,
    ProtocolError,
    React,
    SetTopic,
    encode,
)
from parley.protocol.fields import MAX_SEQ
from parley.protocol.http import (
    AdminUser,
    AdminUserList,
    AuditList,
    AuditQuery,
    AuditRecord,
    CreateRoomBody,
    DmBody,
    DmEntry,
    EditBody,
    HistoryQuery,
    InviteBody,
    InviteCode,
    InviteCodeBody,
    InviteCodeList,
    Invited,
    LoginBody,
    Me,
    MemberList,
    MessageList,
    NewInviteCode,
    PasswordBody,
    PostMessageBody,
    ReadBody,
    RegisterBody,
    RoomEntry,
    RoomList,
    SearchQuery,
    SearchResults,
    Session,
    Settings,
    TopicBody,
    UserQuery,
    decode_body,
    decode_query,
    error_body,
)
from parley.protocol.openapi import WRITE_METHODS, Operation, Route, openapi_document
from parley.server.auth import COOKIE, client_address, origin_allowed, request_token
from parley.server.headers import is_https
from parley.server.httpconn import signed_in
from parley.server.state import ACCOUNTS, CONFIG, DOWNLOADS, NODE, UPLOADS
from parley.store import (
    Invite,
    MessageQuery,
    Registration,
    RoomRecord,
    StoreUnavailable,
    utc_timestamp,
)

__all__ = ["add_routes", "routes"]

log = logging.getLogger("parley.accounts")

routes = web.RouteTableDef()
# A change over HTTP has no client_id (a retried request may repeat it, as a PATCH would)
NO_ID: Final = ""
COOKIE_MAX_AGE: Final = 30 * 24 * 3600
B = TypeVar("B", bound=Struct)


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in user of a request (an Identity for the chat service)."""

    username: str
    token_hash: str
    guest: bool = False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_HTTP_CODES: Final = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    408: ErrorCode.BAD_REQUEST,
    413: ErrorCode.TOO_LARGE,
}


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type="application/json")


def _error(
    code: ErrorCode, message: str, retry_after: float | None = None, status: int | None = None
) -> web.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after + 0.5)))
    return web.Response(
        body=error_body(code, message, retry_after),
        status=status or HTTP_STATUS[code],
        content_type="application/json",
        headers=headers,
    )


def json_errors(handler: Handler) -> Handler:
    """Every API failure is {"error": {"code", "message"}} with a fitting status.

    A write from a foreign browser origin is refused before anything else, signed in or
    not, cookie or bearer: a cross-site page must not sign a visitor in or up, nor act.
    """

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG]
        if request.method in WRITE_METHODS and not origin_allowed(
            request, config.allow_origins, config.trusted_proxies
        ):
            return _error(ErrorCode.FORBIDDEN, "foreign origin: writes come from this site only")
        try:
            return await handler(request)
        except ProtocolError as exc:
            return _error(exc.code, exc.message, exc.retry_after)
        except StoreUnavailable:
            return _error(ErrorCode.UNAVAILABLE, "storage unavailable; retry")
        except web.HTTPException as exc:
            code = _HTTP_CODES.get(exc.status)
            if code is None:
                raise
            resp = _error(code, exc.reason, status=exc.status)
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp

    return guarded


async def _no_such_endpoint(request: web.Request) -> web.StreamResponse:
    """/api/... that no route takes: 405 where the path exists for other methods, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def add_routes(app: web.Application) -> None:
    """The API routes, each behind `json_errors`, and a JSON 404/405 for the rest of /api."""
    guarded = []
    for route in routes:
        assert isinstance(route, web.RouteDef)
        guarded.append(
            web.RouteDef(route.method, route.path, json_errors(route.handler), route.kwargs)
        )
    app.router.add_routes(guarded)  # as `routes` would register them: GET brings HEAD
    app.router.add_route("*", "/api/{tail:.*}", json_errors(_no_such_endpoint))


_DOCS: dict[Callable[..., object], Operation] = {}


def documented(operation: Operation) -> Callable[[H], H]:
    """Describe a route for /api/openapi.json (put it under the `@routes...` line)."""

    def mark(handler: H) -> H:
        _DOCS[handler] = operation
        return handler

    return mark


async def _body(request: web.Request, cls: type[B]) -> B:
    """The JSON body as `cls`. Only application/json (or no type at all): a browser sends
    text/plain and form bodies cross-site without asking first, JSON never (and a body
    without a type from a page carries its Origin, refused above). The body must arrive
    within --header-timeout, as the head must: a slow body holds its connection."""
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise ProtocolError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    timeout = request.app[CONFIG].header_timeout
    try:
        async with asyncio.timeout(timeout or None):
            data = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            reason=f"the request body did not arrive within {timeout:g} s",
            headers={"Connection": "close"},
        ) from None
    except ConnectionError:  # the client left mid-body: nobody to answer, nothing to log
        raise web.HTTPBadRequest(reason="the connection was lost") from None
    return decode_body(data, cls)


async def _user(request: web.Request) -> User:
    token = request_token(request)
    found = await request.app[ACCOUNTS].authenticate(token) if token else None
    if found is None:
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "sign in first")
    signed_in(request)
    return User(*found)


def _session_response(request: web.Request, username: str, token: str, status: int) -> web.Response:
    resp = json_response(Session(username, token), status)
    signed_in(request)
    resp.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=is_https(request, request.app[CONFIG].trusted_proxies),
        path="/",
    )
    return resp


def _signed_out() -> web.Response:
    """204, and the browser forgets the session cookie."""
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


def _address(request: web.Request) -> str:
    return client_address(request, request.app[CONFIG].trusted_proxies)


def _room_name(request: web.Request) -> str:
    room = request.match_info["room"]
    if check_room_ref(room):
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no room {room!r}")
    return room


# --- accounts -------------------------------------------------------------------


@routes.post("/api/register")
@documented(
    Operation(
        "Create an account, signed in (403: registration closed, or no valid invite code)",
        Session,
        201,
        RegisterBody,
        auth=False,
        errors=(403, 409),
    )
)
async def register(request: web.Request) -> web.Response:
    body = await _body(request, RegisterBody)
    username, token = await request.app[ACCOUNTS].register(
        body.username, body.password, _address(request), body.invite
    )
    log.info("registered", extra={"user": username, "address": _address(request)})
    return _session_response(request, username, token, 201)


@routes.post("/api/login")
@documented(
    Operation(
        "Sign in (403: the account is banned)", Session, body=LoginBody, auth=False, errors=(401,)
    )
)
async def login(request: web.Request) -> web.Response:
    body = await _body(request, LoginBody)
    address = _address(request)
    username, token = await request.app[ACCOUNTS].login(body.username, body.password, address)
    log.info("signed in", extra={"user": username, "address": address})
    return _session_response(request, username, token, 200)


@routes.post("/api/logout")
@documented(Operation("Sign out: the token stops working everywhere", status=204))
async def logout(request: web.Request) -> web.Response:
    user = await _user(request)
    await request.app[ACCOUNTS].logout(user.token_hash)
    await request.app[NODE].revoke(user.token_hash)
    log.info("signed out", extra={"user": user.username})
    return _signed_out()


@routes.get("/api/registration")
@documented(
    Operation("How new accounts are made here: open, by invite, or closed", Settings, auth=False)
)
async def registration(request: web.Request) -> web.Response:
    """Public: a sign-up form asks first, so that it offers what the server will take."""
    return json_response(Settings((await request.app[NODE].admin.registration()).value))


@routes.get("/api/me")
@documented(Operation("Who is signed in", Me))
async def me(request: web.Request) -> web.Response:
    user = await _user(request)
    return json_response(Me(user.username, await request.app[NODE].is_admin(user)))


# --- rooms ------------------------------------------------------------------------


@routes.get("/api/rooms")
@documented(Operation("The rooms the user may see", RoomList))
async def list_rooms(request: web.Request) -> web.Response:
    user = await _user(request)
    rooms = await request.app[NODE].rooms_of(user)
    return json_response(RoomList([_room_entry(ref, r) for ref, r in rooms]))


def _room_entry(ref: str, r: RoomRecord) -> RoomEntry:
    members = list(r.members) if r.kind == DM else UNSET
    return RoomEntry(
        ref,
        r.private,
        r.last_seq,
        r.owner,
        r.last_read,
        r.kind,
        r.topic,
        r.unread,
        r.mentions,
        members,
    )


@routes.patch("/api/rooms/{room}")
@documented(
    Operation("Set the room's topic (its owner only)", RoomEntry, body=TopicBody, errors=(403,))
)
async def set_topic(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    ref = _room_name(request)
    body = await _body(request, TopicBody)
    await node.change(user, SetTopic(room=ref, topic=body.topic, client_id=NO_ID))
    return json_response(_room_entry(ref, await node.visible_room(user, ref)))


@routes.post("/api/dms")
@documented(
    Operation(
        "Open the direct-message room of these people and the caller (200: it existed)",
        DmEntry,
        201,
        DmBody,
        also=(200,),
        errors=(404,),
    )
)
async def open_dm(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    node.spend(user, Action.INVITE)
    body = await _body(request, DmBody)
    record, created = await node.open_dm(user, body.users)
    entry = DmEntry(ref_of(record, [record]), record.kind, list(record.members))
    return json_response(entry, 201 if created else 200)


@routes.post("/api/rooms")
@documented(
    Operation("Create a room (the creator owns it)", RoomEntry, 201, CreateRoomBody, errors=(409,))
)
async def create_room(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    node.spend(user, Action.CREATE_ROOM)
    body = await _body(request, CreateRoomBody)
    await node.create_room(user, body.room, body.private)
    # Called by its name by its creator, whatever its key: nobody they see has that name.
    return json_response(RoomEntry(body.room, body.private, 0, user.username), 201)


@routes.get("/api/rooms/{room}/members")
@documented(Operation("The members of a room", MemberList))
async def list_members(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    return json_response(MemberList(await node.members(user, _room_name(request))))


@routes.post("/api/rooms/{room}/members")
@documented(Operation("Add a user to a room", Invited, 201, InviteBody))
async def invite(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    node.spend(user, Action.INVITE)
    ref = _room_name(request)
    record = await node.visible_room(user, ref)
    body = await _body(request, InviteBody)
    invitee = await node.add_member(user, record, body.username)
    return json_response(Invited(ref, invitee), 201)


@routes.delete("/api/rooms/{room}/members/{username}")
@documented(
    Operation(
        "Leave the room (your own name) or remove a member (its owner)", status=204, errors=(403,)
    )
)
async def remove_member(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    node.spend(user, Action.INVITE)
    ref = _room_name(request)
    await node.remove_member(user, ref, request.match_info["username"])
    return web.Response(status=204)


# --- messages ---------------------------------------------------------------------


@routes.get("/api/rooms/{room}/messages")
@documented(Operation("A page of a room's messages (ascending)", MessageList, query=HistoryQuery))
async def history(request: web.Request) -> web.Response:
    user = await _user(request)
    room = _room_name(request)
    page = decode_query(request.query, HistoryQuery)
    query = MessageQuery(room, page.limit, page.after, page.before)
    return json_response(MessageList(await request.app[NODE].history(user, query)))


@routes.post("/api/rooms/{room}/messages")
@documented(
    Operation(
        "Post a message (the same client_id again: 200 and the first message)",
        Message,
        201,
        PostMessageBody,
        also=(200,),
    )
)
async def post_message(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    ref = _room_name(request)
    body = await _body(request, PostMessageBody)
    record = await node.visible_room(user, ref)
    node.check_send(user, body.text, body.attachments)
    await node.check_reply(record.room, ref, body.reply_to)
    msg, created = await node.send(
        user,
        record.room,
        body.text,
        body.client_id,
        ref,
        reply_to=body.reply_to,
        attachments=body.attachments,
    )
    return json_response(msg, 201 if created else 200)


@routes.patch("/api/rooms/{room}/messages/{seq}")
@documented(Operation("Edit a message (its author only)", Message, body=EditBody, errors=(403,)))
async def edit_message(request: web.Request) -> web.Response:
    user = await _user(request)
    ref, seq = _room_name(request), _seq(request)
    body = await _body(request, EditBody)
    edit = Edit(room=ref, target=seq, text=body.text, client_id=NO_ID)
    return await _changed(request, user, edit)


@routes.delete("/api/rooms/{room}/messages/{seq}")
@documented(
    Operation("Delete a message (its author or the room's owner)", status=204, errors=(403,))
)
async def delete_message(request: web.Request) -> web.Response:
    user = await _user(request)
    ref, seq = _room_name(request), _seq(request)
    await request.app[NODE].change(user, Delete(room=ref, target=seq, client_id=NO_ID))
    return web.Response(status=204)


@routes.put("/api/rooms/{room}/messages/{seq}/reactions/{emoji}")
@documented(Operation("React to a message (the emoji URL-encoded)", Message, errors=(400,)))
async def add_reaction(request: web.Request) -> web.Response:
    return await _react(request, on=True)


@routes.delete("/api/rooms/{room}/messages/{seq}/reactions/{emoji}")
@documented(Operation("Take back a reaction", Message, errors=(400,)))
async def remove_reaction(request: web.Request) -> web.Response:
    return await _react(request, on=False)


async def _react(request: web.Request, *, on: bool) -> web.Response:
    user = await _user(request)
    ref, seq = _room_name(request), _seq(request)
    emoji = request.match_info["emoji"]
    return await _changed(
        request, user, React(room=ref, target=seq, emoji=emoji, on=on, client_id=NO_ID)
    )


async def _changed(request: web.Request, user: User, frame: Change) -> web.Response:
    """Make the change, then answer with the message as it is now."""
    node = request.app[NODE]
    await node.change(user, frame)
    target = getattr(frame, "target", 0)
    return json_response(await node.message(user, frame.room, target))


def _seq(request: web.Request) -> int:
    """The message seq in the path: a positive integer in plain digits, else not_found."""
    raw = request.match_info["seq"]
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_SEQ:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no message {raw!r}")
    return int(raw)


@routes.post("/api/rooms/{room}/read")
@documented(
    Operation(
        "Move the read marker forward (a lower seq is ignored; past the end: the last seq)",
        status=204,
        body=ReadBody,
    )
)
async def mark_read(request: web.Request) -> web.Response:
    """The user has read the room up to `seq`; their sockets hear it."""
    user = await _user(request)
    ref = _room_name(request)
    body = await _body(request, ReadBody)
    await request.app[NODE].read(user, ref, body.seq)
    return web.Response(status=204)


# --- search -----------------------------------------------------------------------


@routes.get("/api/search")
@documented(
    Operation(
        "Search messages: every word, as a prefix, ignoring case and diacritics (newest first)",
        SearchResults,
        query=SearchQuery,
        errors=(404, 503),
    )
)
async def search(request: web.Request) -> web.Response:
    """The messages the user may read that hold every word of q (the first 20 words)."""
    user = await _user(request)
    query = decode_query(request.query, SearchQuery)
    if not request.app[CONFIG].search:
        raise ProtocolError(ErrorCode.UNAVAILABLE, "search is off on this server (--search off)")
    found = await request.app[NODE].search(user, query.q, query.room, query.limit)
    return json_response(SearchResults(found))


# --- files ------------------------------------------------------------------------


@routes.post("/api/files")
@documented(
    Operation(
        "Upload a file (multipart/form-data, one part `file`): its type comes from its bytes",
        File,
        201,
        upload=True,
    )
)
async def upload_file(request: web.Request) -> web.Response:
    user = await _user(request)
    request.app[NODE].spend(user, Action.UPLOAD)
    file = await request.app[UPLOADS].receive(request, user.username)
    return json_response(file, 201)


@routes.get("/api/files/{file_id}")
@documented(
    Operation(
        "A file's bytes (to its uploader, or anyone who may read a message carrying it)",
        media="*/*",
        also=(206,),
        errors=(416,),
    )
)
async def download_file(request: web.Request) -> web.StreamResponse:
    return await _download(request, thumb=False)


@routes.get("/api/files/{file_id}/thumb")
@documented(
    Operation(
        "An image's thumbnail (at most 320 px on its long side), as the file's access rule",
        media="image/*",
        also=(206,),
        errors=(416,),
    )
)
async def download_thumb(request: web.Request) -> web.StreamResponse:
    return await _download(request, thumb=True)


async def _download(request: web.Request, *, thumb: bool) -> web.StreamResponse:
    user = await _user(request)
    file_id = request.match_info["file_id"]
    return await request.app[DOWNLOADS].serve(request, file_id, user.username, thumb)


# --- sessions ---------------------------------------------------------------------


@routes.post("/api/password")
@documented(
    Operation(
        "A new password; every other session of the account ends",
        status=204,
        body=PasswordBody,
        errors=(403,),
    )
)
async def change_password(request: web.Request) -> web.Response:
    """A new password; every other session of the account ends (sockets closed with 4001)."""
    user = await _user(request)
    body = await _body(request, PasswordBody)
    await request.app[ACCOUNTS].change_password(
        user.username, user.token_hash, body.old, body.new, _address(request)
    )
    await request.app[NODE].revoke_user(user.username, keep=user.token_hash)
    return web.Response(status=204)


@routes.delete("/api/sessions")
@documented(Operation("Sign out everywhere: every session of the account ends", status=204))
async def sign_out_everywhere(request: web.Request) -> web.Response:
    """Every session of the account ends, this one included."""
    user = await _user(request)
    await request.app[ACCOUNTS].sign_out_everywhere(user.username)
    await request.app[NODE].revoke_user(user.username)
    return _signed_out()


# --- admin (docs/protocol.md "Admin") ----------------------------------------------


async def _admin(request: web.Request) -> User:
    """The signed-in user, who must be an admin: else 401 / 403."""
    user = await _user(request)
    await request.app[NODE].admin.require_admin(user.username)
    return user


def _iso(epoch: float) -> str:
    """Epoch seconds as the API writes times (ISO 8601 UTC, milliseconds)."""
    return utc_timestamp(datetime.fromtimestamp(epoch, UTC))


def _invite_code(invite: Invite) -> InviteCode:
    used_at = None if invite.used_at is None else _iso(invite.used_at)
    return InviteCode(
        invite.code,
        invite.created_by,
        _iso(invite.created_at),
        _iso(invite.expires_at),
        invite.used_by,
        used_at,
    )


@routes.get("/api/admin/users")
@documented(
    Operation(
        "Accounts by name, ignoring case (admins only)",
        AdminUserList,
        query=UserQuery,
        errors=(403,),
    )
)
async def admin_users(request: web.Request) -> web.Response:
    await _admin(request)
    query = decode_query(request.query, UserQuery)
    found = await request.app[NODE].admin.users(query.q, query.after, query.limit)
    users = [AdminUser(u.username, u.admin, u.banned, u.created_at) for u in found]
    return json_response(AdminUserList(users))


@routes.put("/api/admin/users/{username}/admin")
@documented(Operation("Grant the admin role (admins only)", status=204, errors=(409,)))
async def grant_admin(request: web.Request) -> web.Response:
    return await _account_change(request, "admin", on=True)


@routes.delete("/api/admin/users/{username}/admin")
@documented(
    Operation("Revoke the admin role (409: yourself, or the last admin)", status=204, errors=(409,))
)
async def revoke_admin(request: web.Request) -> web.Response:
    return await _account_change(request, "admin", on=False)


@routes.post("/api/admin/users/{username}/ban")
@documented(
    Operation(
        "Ban: sessions end, sockets close with 4003 (409: yourself, or an admin)",
        status=204,
        errors=(409,),
    )
)
async def ban(request: web.Request) -> web.Response:
    return await _account_change(request, "banned", on=True)


@routes.delete("/api/admin/users/{username}/ban")
@documented(Operation("Unban (admins only)", status=204))
async def unban(request: web.Request) -> web.Response:
    return await _account_change(request, "banned", on=False)


async def _account_change(request: web.Request, flag: str, *, on: bool) -> web.Response:
    """Grant or revoke (`flag` "admin"), ban or unban ("banned") the account in the path."""
    user = await _admin(request)
    admin = request.app[NODE].admin
    change = admin.set_admin if flag == "admin" else admin.set_banned
    await change(user.username, request.match_info["username"], on)
    return web.Response(status=204)


@routes.get("/api/admin/settings")
@documented(Operation("The server's settings (admins only)", Settings, errors=(403,)))
async def get_settings(request: web.Request) -> web.Response:
    await _admin(request)
    return json_response(Settings((await request.app[NODE].admin.registration()).value))


@routes.patch("/api/admin/settings")
@documented(
    Operation("Change the registration mode, on every node at once", Settings, body=Settings)
)
async def patch_settings(request: web.Request) -> web.Response:
    user = await _admin(request)
    body = await _body(request, Settings)
    mode = Registration(body.registration)
    await request.app[NODE].admin.set_registration(user.username, mode)
    return json_response(Settings(mode.value))


@routes.post("/api/invites")
@documented(
    Operation("A new single-use invite code (admins only)", NewInviteCode, 201, InviteCodeBody)
)
async def create_invite(request: web.Request) -> web.Response:
    user = await _admin(request)
    body = await _body(request, InviteCodeBody)
    invite = await request.app[NODE].admin.create_invite(user.username, body.expires_in)
    return json_response(NewInviteCode(invite.code, _iso(invite.expires_at)), 201)


@routes.get("/api/invites")
@documented(
    Operation("Every invite code, newest first (admins only)", InviteCodeList, errors=(403,))
)
async def list_invites(request: web.Request) -> web.Response:
    await _admin(request)
    invites = await request.app[NODE].admin.invites()
    return json_response(InviteCodeList([_invite_code(i) for i in invites]))


@routes.delete("/api/invites/{code}")
@documented(Operation("Revoke an invite code (admins only)", status=204))
async def delete_invite(request: web.Request) -> web.Response:
    user = await _admin(request)
    await request.app[NODE].admin.delete_invite(user.username, request.match_info["code"])
    return web.Response(status=204)


@routes.get("/api/admin/audit")
@documented(
    Operation(
        "The audit log, newest first (admins only)", AuditList, query=AuditQuery, errors=(403,)
    )
)
async def audit(request: web.Request) -> web.Response:
    await _admin(request)
    query = decode_query(request.query, AuditQuery)
    found = await request.app[NODE].admin.audit(query.before, query.limit)
    entries = [AuditRecord(e.id, e.ts, e.actor, e.action, e.target, e.room) for e in found]
    return json_response(AuditList(entries))


# --- the API described -------------------------------------------------------------


@routes.get("/api/openapi.json")
@documented(Operation("This API as an OpenAPI 3.1 document", dict[str, Any], auth=False))
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_openapi_json(), content_type="application/json")


@cache
def _openapi_json() -> bytes:
    """Built once, from the routes and the structs they decode and answer with."""
    described = []
    for route in routes:
        assert isinstance(route, web.RouteDef)
        summary = (route.handler.__doc__ or route.handler.__name__).strip().splitlines()[0]
        operation = _DOCS.get(route.handler) or Operation(summary)
        described.append(Route(route.method, route.path, route.handler.__name__, operation))
    document = openapi_document(described, title="Parley", version=version("parley"), cookie=COOKIE)
    return encode(document)
