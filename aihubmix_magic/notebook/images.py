"""`--image PATH|URL|VAR`: images sent with the prompt, as content parts.

Each source becomes one URL: an http(s) or data URL is sent as it is; a variable holding a PIL image,
a matplotlib figure, image bytes or a path, or a local image file, becomes a base64 data URL. The parts
are chat's `{"type": "image_url", "image_url": {"url": …}}`; `_threads` turns them into the responses
endpoint's `{"type": "input_image", "image_url": …}`.

PIL and matplotlib are optional: they are recognised through `sys.modules`, never imported here.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from typing import Any

from IPython.core.error import UsageError

__all__ = ["image_url", "image_urls"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def image_urls(sources: list[str] | None, namespace: dict[str, Any]) -> list[str]:
    """One URL per --image source (the typed request turns them into content parts)."""
    return [image_url(source, namespace) for source in sources or ()]


def image_url(source: str, namespace: dict) -> str:
    """One --image argument as a URL; a UsageError names a source that is not an image."""
    if source.startswith(("http://", "https://", "data:image/")):
        return source
    if source.isidentifier() and source in namespace:
        return _from_value(source, namespace[source])
    if os.path.isfile(os.path.expanduser(source)):
        return _from_file(os.path.expanduser(source))
    if source.isidentifier():
        raise UsageError(f"--image {source}: no variable and no file named {source!r}.")
    raise UsageError(f"--image {source}: no such file (give a path, an http(s) URL or a variable name).")


def _from_value(name: str, value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return _data_url(bytes(value), f"--image {name}")
    if isinstance(value, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(value))
        if isinstance(value, str) and value.startswith(("http://", "https://", "data:image/")):
            return value
        if not os.path.isfile(path):
            raise UsageError(f"--image {name}: {name} holds {path!r}, which is not a file.")
        return _from_file(path)
    image_module = sys.modules.get("PIL.Image")
    if image_module is not None and isinstance(value, image_module.Image):
        buffer = io.BytesIO()
        image = value if value.mode in ("RGB", "RGBA", "L", "LA", "P") else value.convert("RGBA")
        image.save(buffer, format="PNG")
        return _data_url(buffer.getvalue(), f"--image {name}")
    figure_module = sys.modules.get("matplotlib.figure")
    if figure_module is not None and isinstance(value, figure_module.Figure):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return _data_url(buffer.getvalue(), f"--image {name}")
    raise UsageError(f"--image {name}: {name} is of type {type(value).__name__}, not an image (use a PIL image, a matplotlib "
                     "figure, image bytes, a path or a URL).")


def _from_file(path: str) -> str:
    size = os.path.getsize(path)
    if size > MAX_IMAGE_BYTES:
        raise UsageError(f"--image {path}: {size / 1e6:.1f} MB is too big (at most {MAX_IMAGE_BYTES // 2**20} MB).")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise UsageError(f"--image {path}: cannot read it ({exc.strerror or exc}).") from None
    return _data_url(data, f"--image {path}")


def _data_url(data: bytes, label: str) -> str:
    mime = next((kind for signature, kind in _SIGNATURES if data.startswith(signature)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None:
        raise UsageError(f"{label}: not a PNG, JPEG, GIF, WebP or BMP image.")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
