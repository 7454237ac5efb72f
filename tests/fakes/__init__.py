"""Loopback fakes of the Google and OpenAI APIs for offline tests of the real SDK code paths."""

from tests.fakes.brain import Brain, colour_clip, is_red, padded_clip, role_of
from tests.fakes.google import API_BODY_LIMIT, FakeGoogle, Op, gemini_answer
from tests.fakes.openai import FakeOpenAI, chat_answer
from tests.fakes.server import UNROUTED, FakeServer, Reply, Request, error, hang

# Call policy for tests: quick retries, short deadlines.
FAST = {"max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 2.0, "deadline_s": 10.0}


def gemini_options(server: FakeGoogle, **extra: object) -> dict:
    return {"api_key": "test-google-key-000", "base_url": server.url, **FAST, **extra}


def veo_options(server: FakeGoogle, **extra: object) -> dict:
    return {"api_key": "test-google-key-000", "base_url": server.url, "poll_s": 0.01, **FAST, **extra}


def openai_options(server: FakeOpenAI, **extra: object) -> dict:
    return {"api_key": "test-openai-key-000", "base_url": server.url + "/v1", **FAST, **extra}


def header(request: Request, name: str) -> str | None:
    """A request header, case-insensitively."""
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


__all__ = ["API_BODY_LIMIT", "FAST", "UNROUTED", "gemini_options", "header", "openai_options", "veo_options", "Brain", "FakeGoogle", "FakeOpenAI", "FakeServer", "Op", "Reply", "Request", "chat_answer", "colour_clip",
           "error", "gemini_answer", "hang", "is_red", "padded_clip", "role_of"]
