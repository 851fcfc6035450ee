"""The HTTP API under /api: accounts, rooms, history and REST sends (JSON in, JSON out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Final

import msgspec
from aiohttp import web

from parley.core import Action, check_room, check_username
from parley.protocol import HTTP_STATUS, ErrorCode, ProtocolError, encode
from parley.server.auth import COOKIE, client_address, origin_allowed, request_token
from parley.server.state import ACCOUNTS, CONFIG, NODE
from parley.store import MessageQuery, StoreUnavailable

__all__ = ["add_routes", "routes"]

routes = web.RouteTableDef()
COOKIE_MAX_AGE: Final = 30 * 24 * 3600
_json = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in user of a request (an Identity for the chat node)."""

    username: str
    token_hash: str
    guest: bool = False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES: Final = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    413: ErrorCode.TOO_LARGE,
}


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type="application/json")


def _error(
    code: ErrorCode, message: str, retry_after: float | None = None, status: int | None = None
) -> web.Response:
    body: dict[str, object] = {"code": code.value, "message": message}
    headers = {}
    if retry_after is not None:
        body["retry_after"] = round(retry_after, 3)
        headers["Retry-After"] = str(max(1, round(retry_after + 0.5)))
    return web.Response(
        body=encode({"error": body}),
        status=status or HTTP_STATUS[code],
        content_type="application/json",
        headers=headers,
    )


def json_errors(handler: Handler) -> Handler:
    """Every API failure is {"error": {"code", "message"}} with a fitting status."""

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
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


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        return _json.decode(await request.read())
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "body must be a JSON object") from None


async def _user(request: web.Request) -> User:
    token = request_token(request)
    found = await request.app[ACCOUNTS].authenticate(token) if token else None
    if found is None:
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "sign in first")
    # A cookie rides along on cross-site requests: only our own pages may use it to act.
    cookie_write = "Authorization" not in request.headers and request.method != "GET"
    if cookie_write and not origin_allowed(request, request.app[CONFIG].allow_origins):
        raise ProtocolError(ErrorCode.FORBIDDEN, "foreign origin")
    return User(*found)


def _session_response(request: web.Request, username: str, token: str, status: int) -> web.Response:
    resp = json_response({"username": username, "token": token}, status)
    resp.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.app[CONFIG].tls,
        path="/",
    )
    return resp


def _address(request: web.Request) -> str:
    return client_address(request, request.app[CONFIG].trusted_proxies)


def _room_name(request: web.Request) -> str:
    room = request.match_info["room"]
    if check_room(room):
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no room {room!r}")
    return room


def _int_param(request: web.Request, name: str, low: int, high: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be {bound}")
    return value


# --- accounts -------------------------------------------------------------------


@routes.post("/api/register")
async def register(request: web.Request) -> web.Response:
    body = await _body(request)
    username, token = await request.app[ACCOUNTS].register(
        body.get("username"), body.get("password"), _address(request)
    )
    return _session_response(request, username, token, 201)


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    body = await _body(request)
    address = _address(request)
    username, token = await request.app[ACCOUNTS].login(
        body.get("username"), body.get("password"), address
    )
    return _session_response(request, username, token, 200)


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    user = await _user(request)
    await request.app[ACCOUNTS].logout(user.token_hash)
    await request.app[NODE].revoke(user.token_hash)
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    user = await _user(request)
    return json_response({"username": user.username})


# --- rooms ------------------------------------------------------------------------


@routes.get("/api/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    user = await _user(request)
    rooms = await request.app[NODE].store.list_rooms(user.username)
    return json_response(
        {
            "rooms": [
                {"room": r.room, "private": r.private, "last_seq": r.last_seq, "owner": r.owner}
                for r in rooms
            ]
        }
    )


@routes.post("/api/rooms")
async def create_room(request: web.Request) -> web.Response:
    user = await _user(request)
    request.app[NODE].spend(user, Action.CREATE_ROOM)
    body = await _body(request)
    room, private = body.get("room"), body.get("private", False)
    reason = check_room(room)
    if reason or not isinstance(private, bool):
        raise ProtocolError(ErrorCode.BAD_REQUEST, reason or "private must be true or false")
    assert isinstance(room, str)
    if not await request.app[NODE].store.create_room(room, private, user.username):
        raise ProtocolError(ErrorCode.CONFLICT, f"room {room!r} exists")
    return json_response(
        {"room": room, "private": private, "last_seq": 0, "owner": user.username}, 201
    )


@routes.get("/api/rooms/{room}/members")
async def list_members(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    record = await node.visible_room(user, _room_name(request))
    return json_response({"members": await node.store.members(record.room)})


@routes.post("/api/rooms/{room}/members")
async def invite(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    node.spend(user, Action.INVITE)
    record = await node.visible_room(user, _room_name(request))
    body = await _body(request)
    name = body.get("username")
    if not isinstance(name, str) or check_username(name):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "username must be a valid user name")
    invitee = await node.store.find_user(name)
    if invitee is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {name!r}")
    await node.store.add_member(record.room, invitee.username)
    return json_response({"room": record.room, "username": invitee.username}, 201)


# --- messages ---------------------------------------------------------------------


@routes.get("/api/rooms/{room}/messages")
async def history(request: web.Request) -> web.Response:
    user = await _user(request)
    query = MessageQuery(
        room=_room_name(request),
        limit=_int_param(request, "limit", 1, 100) or 50,
        after=_int_param(request, "after", 0),
        before=_int_param(request, "before", 0),
    )
    return json_response({"messages": await request.app[NODE].history(user, query)})


@routes.post("/api/rooms/{room}/messages")
async def post_message(request: web.Request) -> web.Response:
    user = await _user(request)
    node = request.app[NODE]
    room = _room_name(request)
    body = await _body(request)
    text, client_id = body.get("text"), body.get("client_id")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "text must be a string")
    if client_id is not None and not (
        isinstance(client_id, str) and 0 < len(client_id) <= 128 and "\x00" not in client_id
    ):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "client_id must be 1-128 characters, no NUL")
    await node.visible_room(user, room)
    node.check_send(user, text)
    msg, created = await node.send(user, room, text, client_id)
    return json_response(msg, 201 if created else 200)
