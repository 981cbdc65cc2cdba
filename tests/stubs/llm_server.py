"""A local HTTP server that speaks the OpenAI chat-completions and Anthropic messages wire formats.

Tests point the real ``openai`` and ``anthropic`` SDKs at it. Each route answers from a script of replies the
test pushes (one reply per request, in order; with none left, its ``respond`` function's reply to the request's
body, or without one 400 "no reply scripted") and records every request it received, so a test can assert the
headers that were sent and how many requests were made.

    async with LLMStubServer() as stub:
        stub.openai.push(Failure(429, retry_after="2"), Answer('{"action": "wait"}'))
        ...  # AsyncOpenAI(base_url=stub.openai_base_url, ...)
        assert len(stub.openai.requests) == 2
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from triplegain.llm import ProviderKind, ProviderSettings, ProvidersSettings, RetrySettings


@dataclass(frozen=True)
class Answer:
    """200 with the assistant's ``text`` and token usage; ``truncated`` reports the token limit as the stop."""

    text: str
    input_tokens: int = 120
    output_tokens: int = 40
    truncated: bool = False


@dataclass(frozen=True)
class Failure:
    """An error status in the wire format's error shape, e.g. 429 with ``retry_after``, 500, 400, 401."""

    status: int
    retry_after: str | None = None
    message: str = "stub failure"


@dataclass(frozen=True)
class EchoCredentials:
    """401 whose message quotes the credentials received, as a careless server might."""


@dataclass(frozen=True)
class RawBody:
    """Any body as is (garbage, truncated JSON), with the given status and a JSON content type."""

    body: str
    status: int = 200


@dataclass(frozen=True)
class Hang:
    """Answer nothing (503 once released by ``release()`` or the server closing): the client's timeout must fire."""


@dataclass(frozen=True)
class Delayed:
    """Answer ``then`` after ``seconds``: a slow but working server."""

    seconds: float
    then: Answer


Reply = Answer | Failure | EchoCredentials | RawBody | Hang | Delayed
ErrorShape = Callable[[int, str], dict[str, Any]]


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Route:
    """One endpoint: the replies still scripted, and the requests received so far."""

    path: str
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[ReceivedRequest] = field(default_factory=list)
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    respond: Callable[[Any], Reply] | None = None
    """The reply to a request (its JSON body) when no scripted reply is left: a server that answers anything."""

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)


class LLMStubServer:
    """aiohttp server on 127.0.0.1 and an ephemeral port; use as an async context manager."""

    def __init__(self) -> None:
        self.openai = Route("/v1/chat/completions")
        self.anthropic = Route("/v1/messages")
        self._released = asyncio.Event()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post(self.openai.path, self._handle_openai)
        app.router.add_post(self.anthropic.path, self._handle_anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    @property
    def openai_base_url(self) -> str:
        """What ``AsyncOpenAI(base_url=…)`` takes: the SDK appends ``/chat/completions``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What ``AsyncAnthropic(base_url=…)`` takes: the SDK appends ``/v1/messages``."""
        return self.url

    def release(self) -> None:
        """Let every hanging request (present and future) finish."""
        self._released.set()

    async def __aenter__(self) -> LLMStubServer:
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        await self._runner.cleanup()

    async def _handle_openai(self, request: web.Request) -> web.StreamResponse:
        reply = await self._next_reply(self.openai, request)
        if isinstance(reply, Answer):
            return web.json_response(self._openai_completion(reply))
        return self._error_response(reply, request, _openai_error)

    async def _handle_anthropic(self, request: web.Request) -> web.StreamResponse:
        reply = await self._next_reply(self.anthropic, request)
        if isinstance(reply, Answer):
            return web.json_response(self._anthropic_message(reply))
        return self._error_response(reply, request, _anthropic_error)

    async def _next_reply(self, route: Route, request: web.Request) -> Reply:
        """Record the request, then wait out a Hang or Delayed reply and return what to send."""
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            body = raw
        route.requests.append(ReceivedRequest(request.path, dict(request.headers), body))
        if route.replies:
            reply = route.replies.popleft()
        elif route.respond is not None:
            reply = route.respond(body)
        else:
            reply = Failure(400, message="stub: no reply scripted")
        if isinstance(reply, Hang):
            route.hanging.set()
            await self._released.wait()
            return Failure(503, message="stub: released after hanging")
        if isinstance(reply, Delayed):
            await asyncio.sleep(reply.seconds)
            return reply.then
        return reply

    def _error_response(self, reply: Reply, request: web.Request, shape: ErrorShape) -> web.Response:
        if isinstance(reply, RawBody):
            return web.Response(status=reply.status, text=reply.body, content_type="application/json")
        if isinstance(reply, EchoCredentials):
            received = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            return web.json_response(shape(401, f"invalid credentials: {received}"), status=401)
        assert isinstance(reply, Failure)
        headers = {"retry-after": reply.retry_after} if reply.retry_after is not None else {}
        return web.json_response(shape(reply.status, reply.message), status=reply.status, headers=headers)

    def _openai_completion(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-stub-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "stub-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "length" if answer.truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": answer.input_tokens,
                "completion_tokens": answer.output_tokens,
                "total_tokens": answer.input_tokens + answer.output_tokens,
            },
        }

    def _anthropic_message(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": f"msg_stub_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": "stub-model",
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": "max_tokens" if answer.truncated else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        }


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kind = "rate_limit_exceeded" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


def refused_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


STUB_KEYS = {"DEEPSEEK_API_KEY": "sk-test-deepseek", "ANTHROPIC_API_KEY": "sk-test-anthropic"}
"""The environment that gives ``stub_providers`` their keys."""


def stub_providers(stub: LLMStubServer, deepseek_timeout: float, anthropic_timeout: float) -> ProvidersSettings:
    """DeepSeek (OpenAI wire format) and Claude pointed at ``stub``, one attempt each, with these timeouts."""
    once = RetrySettings(max_attempts=1)
    return ProvidersSettings(
        deepseek=ProviderSettings(
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url=stub.openai_base_url,
            model="deepseek-chat",
            api_key_env="DEEPSEEK_API_KEY",
            timeout_seconds=deepseek_timeout,
            retry=once,
        ),
        anthropic=ProviderSettings(
            kind=ProviderKind.ANTHROPIC,
            base_url=stub.anthropic_base_url,
            model="claude-test",
            api_key_env="ANTHROPIC_API_KEY",
            timeout_seconds=anthropic_timeout,
            retry=once,
        ),
    )
