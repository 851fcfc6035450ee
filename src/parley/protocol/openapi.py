"""The OpenAPI 3.1 document of the HTTP API, generated from the structs the server decodes
and encodes (`parley.protocol.http`), so the description cannot drift from the code.

Which statuses an operation may answer follows from what it takes: a body brings 400,
413 and 415; a write brings 403 (a foreign Origin) and 429; signing in brings 401.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import msgspec

from parley.protocol.fields import RoomRef
from parley.protocol.http import ErrorBody

__all__ = ["WRITE_METHODS", "Operation", "Route", "openapi_document"]

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PATH_PARAMETERS: Final[Mapping[str, object]] = {"room": RoomRef}
_REF: Final = "#/components/schemas/{name}"
_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Operation:
    """What one route takes and answers, beyond its method and path."""

    summary: str
    answer: type | None = None  # the body of the success answer; None: no body
    status: int = 200  # the success status
    body: type | None = None  # the JSON request body
    query: type | None = None  # the query string, a Struct of its parameters
    auth: bool = True  # needs a bearer token or the session cookie
    errors: tuple[int, ...] = ()  # error statuses particular to this operation
    also: tuple[int, ...] = ()  # more success statuses, with the same answer
    upload: bool = False  # the body is multipart/form-data with one part, `file`
    media: str | None = None  # the success answer is bytes of this media type, not JSON


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    name: str  # the operationId
    operation: Operation


def openapi_document(routes: Iterable[Route], *, title: str, version: str, cookie: str) -> JSON:
    """The OpenAPI 3.1 document (a JSON-ready dict) of `routes`."""
    routes = list(routes)
    types: list[object] = [ErrorBody, *PATH_PARAMETERS.values()]
    for route in routes:
        op = route.operation
        types += [t for t in (op.answer, op.body, op.query) if t is not None]
    found, components = msgspec.json.schema_components(types, ref_template=_REF)
    schemas = dict(zip(map(_key, types), found, strict=True))
    paths: dict[str, JSON] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, schemas, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": cookie},
            },
        },
    }


def _key(tp: object) -> str:
    return repr(tp)  # Annotated types do not hash the same way twice; their repr does


def _operation(route: Route, schemas: dict[str, JSON], components: JSON) -> JSON:
    op = route.operation
    out: JSON = {"operationId": route.name, "summary": op.summary}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name, schemas)}
        for name in _PARAM.findall(route.path)
    ]
    if op.query is not None:
        parameters += _query_parameters(schemas[_key(op.query)], components)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content = {"application/json": {"schema": schemas[_key(op.body)]}}
        out["requestBody"] = {"required": True, "content": content}
    if op.upload:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": _UPLOAD}}
    out["security"] = [{"bearer": []}, {"cookie": []}] if op.auth else []
    answer = schemas[_key(op.answer)] if op.answer is not None else None
    error = schemas[_key(ErrorBody)]
    out["responses"] = {
        **{str(status): _success(status, answer, op.media) for status in (op.status, *op.also)},
        **{str(status): _response(status, error) for status in sorted(_error_statuses(route))},
    }
    return out


def _response(status: int, schema: JSON | None) -> JSON:
    out: JSON = {"description": HTTPStatus(status).phrase}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_BINARY: Final = {"type": "string", "format": "binary"}
_UPLOAD: Final = {
    "schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]},
    "encoding": {"file": {"contentType": "application/octet-stream"}},
}


def _success(status: int, answer: JSON | None, media: str | None) -> JSON:
    """A success answer: JSON (`answer`'s schema) or bytes of type `media`."""
    if media is None:
        return _response(status, answer)
    return {"description": HTTPStatus(status).phrase, "content": {media: {"schema": _BINARY}}}


def _error_statuses(route: Route) -> set[int]:
    op = route.operation
    statuses = {503, *op.errors}  # storage unavailable: any route may meet it
    if op.auth:
        statuses.add(401)
    if op.body is not None:
        statuses |= {400, 413, 415}
    if op.upload:
        statuses |= {400, 413}
    if op.query is not None:
        statuses.add(400)
    if _PARAM.search(route.path):
        statuses.add(404)
    if route.method in WRITE_METHODS:
        statuses |= {403, 429}
    return statuses


def _path_schema(name: str, schemas: dict[str, JSON]) -> JSON:
    tp = PATH_PARAMETERS.get(name)
    return schemas[_key(tp)] if tp is not None else {"type": "string"}


def _query_parameters(ref: JSON, components: JSON) -> list[JSON]:
    """A query Struct as parameters: one per field, `T | None` as an optional `T`."""
    struct = components[ref["$ref"].rsplit("/", 1)[1]]
    required = set(struct.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in struct["properties"].items()
    ]


def _not_null(schema: JSON) -> JSON:
    """A query string cannot spell null: absent is how a parameter says None."""
    alternatives = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and v is not None}
    if len(alternatives) == 1:
        return {**alternatives[0], **rest}
    return {**rest, "anyOf": alternatives} if alternatives else rest
