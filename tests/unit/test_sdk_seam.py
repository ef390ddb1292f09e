"""The seam to the SDK's internals: every private name the tap relies on still exists, as is.

An SDK upgrade that renames, removes or re-signs one of them fails here, before it can
break bookmarks or the fast path silently. The rest of the package must not touch SDK
internals at all (checked on its source), so this list is complete.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import textwrap
import typing as t
from pathlib import Path

import pytest
from singer_sdk import Stream, Tap
from singer_sdk.streams import RESTStream

import tap_flowfinity
from tap_flowfinity.sdk_seam import PRIVATE_TOUCH_POINTS, SeamStream, TouchPoint
from tap_flowfinity.streams import ViewStream
from tap_flowfinity.tap import TapFlowfinity

PACKAGE = Path(tap_flowfinity.__file__).parent
CATALOG: dict[str, t.Any] = {
    "streams": [
        {
            "tap_stream_id": "leads",
            "stream": "leads",
            "schema": {
                "type": "object",
                "properties": {
                    "RecordID": {"type": ["string"]},
                    "lastSubmissionId": {"type": ["integer"]},
                },
            },
            "metadata": [],
        }
    ]
}


def resolve(owner: str) -> object:
    """The module, or the class in it, that `owner` ("module" or "module:Class") names."""
    module_name, _, class_name = owner.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name) if class_name else module


@pytest.fixture(scope="module")
def stream() -> ViewStream:
    """A real stream of the tap, built from a catalog (no request is made)."""
    tap = TapFlowfinity(
        config={
            "username": "integration",
            "password": "seam-test-password",
            "views": [{"name": "leads", "url": "https://flowfinity.invalid/views/leads"}],
        },
        catalog=CATALOG,
    )
    found = tap.streams["leads"]
    assert isinstance(found, ViewStream)
    return found


def sdk_stream_attributes(stream: ViewStream) -> set[str]:
    """Names the SDK's stream classes define, on the class or set on an instance."""
    sdk_instance = {name for name in vars(stream) if hasattr(Stream, name) or _set_by_sdk(name)}
    return set(dir(RESTStream)) | sdk_instance


def _set_by_sdk(name: str) -> bool:
    """Whether the SDK's stream constructors assign `self.<name>`."""
    sources = inspect.getsource(Stream.__init__) + inspect.getsource(RESTStream.__init__)
    return f"self.{name} " in sources or f"self.{name}:" in sources


@pytest.mark.parametrize("point", PRIVATE_TOUCH_POINTS, ids=lambda p: f"{p.owner}.{p.name}")
def test_each_private_sdk_name_exists_with_the_signature_relied_on(
    point: TouchPoint, stream: ViewStream
) -> None:
    owner = resolve(point.owner)
    if point.use in {"read", "write"}:
        instance = stream.state_manager if point.owner.endswith("StreamStateManager") else stream
        assert isinstance(owner, type) and isinstance(instance, owner)
        assert point.name in vars(instance), f"{point.owner} no longer sets {point.name}"
        return
    assert hasattr(owner, point.name), f"{point.owner} no longer has {point.name}"
    target = getattr(owner, point.name)
    if dataclasses.is_dataclass(target):
        assert [f.name for f in dataclasses.fields(target)] == ["config", "parse_env"]
        return
    assert str(inspect.signature(target)) == point.signature


def test_every_private_override_of_the_tap_is_a_listed_touch_point(stream: ViewStream) -> None:
    """An SDK upgrade that adds a private name one of our classes already uses is caught too."""
    listed = {p.name for p in PRIVATE_TOUCH_POINTS} | {"_abc_impl"}  # set by ABCMeta itself
    sdk_names = sdk_stream_attributes(stream)
    ours = [c for c in type(stream).__mro__ if c.__module__.startswith("tap_flowfinity.")]
    assert SeamStream in ours
    unlisted = sorted(
        f"{cls.__name__}.{name}"
        for cls in ours
        for name in vars(cls)
        if name.startswith("_") and not name.startswith("__") and name in sdk_names
        if name not in listed
    )
    assert not unlisted, f"private SDK names overridden outside the seam's list: {unlisted}"


def test_no_module_but_the_seam_touches_sdk_internals(stream: ViewStream) -> None:
    """No private SDK import, and no private SDK stream or tap attribute, outside the seam."""
    sdk_private = {
        name
        for name in sdk_stream_attributes(stream) | set(dir(Tap)) | set(vars(stream.tap))
        if name.startswith("_") and not name.startswith("__")
    }
    problems = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "sdk_seam.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
                private = "._" in f".{node.module}" or any(
                    a.name.startswith("_") for a in node.names
                )
                if private:
                    problems.append(f"{path.name}:{node.lineno} imports from {node.module}")
            if isinstance(node, ast.Attribute) and node.attr in sdk_private:
                problems.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    assert not problems, problems


def test_only_the_seam_overrides_the_sdks_private_methods(stream: ViewStream) -> None:
    """The subclasses implement the seam's hooks; none re-overrides a private SDK method."""
    overridden = {
        name
        for name in vars(SeamStream)
        if name.startswith("_") and not name.startswith("__") and name != "_abc_impl"
    }
    expected = {p.name for p in PRIVATE_TOUCH_POINTS if p.use == "override"}
    assert overridden == expected
    mro = type(stream).__mro__
    for cls in mro[: mro.index(SeamStream)]:
        assert not expected & set(vars(cls)), (
            f"{cls.__name__} overrides {expected & set(vars(cls))}"
        )


# The SDK's record loop that `SeamStream.plain_record_loop` repeats step by step, as a digest
# of its code (comments and docstring left out).
SDK_RECORD_LOOP_SHA256 = "a2ef56d6c256f7e45f679f1ee7bbf386192d10eae179b3eb90757cac52e24414"


def code_digest(function: t.Callable[..., t.Any]) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0]
    assert isinstance(body, ast.FunctionDef)
    if ast.get_docstring(body) is not None:
        body.body = body.body[1:]
    return hashlib.sha256(ast.dump(body).encode()).hexdigest()


def test_the_sdks_record_loop_is_the_one_the_plain_loop_repeats() -> None:
    assert code_digest(Stream._sync_records) == SDK_RECORD_LOOP_SHA256, (
        "the SDK's Stream._sync_records changed: compare SeamStream.plain_record_loop with it "
        "step by step, then update SDK_RECORD_LOOP_SHA256"
    )


def test_a_view_stream_takes_the_plain_record_loop(stream: ViewStream) -> None:
    """The loop applies to the tap's streams as built (else its speed-up would go unnoticed)."""
    assert stream.use_plain_record_loop
    assert stream.partitions is None and not stream.child_streams
