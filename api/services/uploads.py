"""An uploaded file's bytes, sent raw (`curl --data-binary`) or as a form (`curl -F`).

The body arrives through `api.limits.BodySizeLimit`, which stops it at the
route's cap; here it is read whole (it is bounded) and, for
`multipart/form-data`, the part named `file` is taken out. The form is split
on its boundary without a parser of its own: one file part is all a dataset
upload has.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from api.errors import Problem, field_problem

# Content types a raw upload may declare; anything else is refused before reading.
RAW_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/octet-stream",
        "application/zip",
        "application/x-npz",
    }
)
FORM_TYPE = "multipart/form-data"
FORM_FIELD = "file"


@dataclass(frozen=True, slots=True)
class Upload:
    """A file's bytes and the name it was sent under (None when sent raw)."""

    body: bytes
    filename: str | None


def _unsupported(content_type: str) -> Problem:
    accepted = ", ".join(sorted(RAW_TYPES))
    return Problem(
        415,
        "Unsupported Media Type",
        f"content type {content_type or 'none'!r} is not an upload; send a form with a "
        f"`{FORM_FIELD}` field (curl -F {FORM_FIELD}=@data.csv) or the file itself as one "
        f"of {accepted}",
        kind="unsupported-media-type",
        errors=[{"field": "Content-Type", "reason": "not a file upload"}],
    )


def _bad_form(reason: str) -> Problem:
    detail = f"the form upload cannot be read: {reason}"
    return field_problem(400, "Bad form", FORM_FIELD, reason, kind="bad-form", detail=detail)


async def read_upload(request: Request) -> Upload:
    """The uploaded file; a 415 problem for a content type that is not an upload, 400 for
    a form without a `file` part."""
    content_type = request.headers.get("content-type", "")
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type != FORM_TYPE and media_type not in RAW_TYPES:
        raise _unsupported(media_type)
    chunks = [chunk async for chunk in request.stream()]
    body = b"".join(chunks)
    if media_type != FORM_TYPE:
        return Upload(body, None)
    return _form_file(body, _boundary(parameters))


def _boundary(parameters: str) -> bytes:
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            return value.strip('"').encode()
    raise _bad_form("the Content-Type names no boundary")


def _form_file(body: bytes, boundary: bytes) -> Upload:
    """The part named `file` of a multipart body."""
    delimiter = b"--" + boundary
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            raise _bad_form("a part has no blank line after its headers")
        disposition = _header(head, b"content-disposition")
        if _parameter(disposition, "name") != FORM_FIELD:
            continue
        # The part ends with the CRLF that precedes the next delimiter.
        return Upload(content.removesuffix(b"\r\n"), _parameter(disposition, "filename"))
    raise _bad_form(f"no `{FORM_FIELD}` field (curl -F {FORM_FIELD}=@data.csv)")


def _header(head: bytes, name: bytes) -> str:
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.decode("utf-8", "replace").strip()
    return ""


def _parameter(header: str, name: str) -> str | None:
    for parameter in header.split(";")[1:]:
        key, _, value = parameter.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None
