"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` (endpoint "chat")."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from collabvr.media import Image
from tests.fakes.brain import Brain, role_of
from tests.fakes.server import FakeServer, Reply, Request

_ids = itertools.count(1)


def chat_answer(answer: Any, *, prompt_tokens: int = 100, output_tokens: int = 20, finish: str = "stop",
                refusal: str | None = None, fault: str | None = None) -> Reply:
    """A chat.completion whose message content is ``answer`` (JSON-encoded unless a string)."""
    text = answer if isinstance(answer, str) or answer is None else json.dumps(answer)
    body = {
        "id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": text, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens,
                  "total_tokens": prompt_tokens + output_tokens},
    }
    return Reply(200, body, fault=fault)


class FakeOpenAI(FakeServer):
    """Chat completions answered by ``brain`` from the decoded images of the first user turn."""

    def __init__(self, brain: Brain | None = None) -> None:
        super().__init__()
        self.brain = brain or Brain()
        self.route("POST", r"/v1/chat/completions", "chat", self._chat)

    @staticmethod
    def decode(request: Request) -> tuple[str, list[Image]]:
        content = request.json["messages"][0]["content"]
        texts = [c["text"] for c in content if c["type"] == "text"]
        images = [Image.from_png(base64.b64decode(c["image_url"]["url"].split(",", 1)[1]))
                  for c in content if c["type"] == "image_url"]
        return (texts[0] if texts else ""), images

    def _chat(self, request: Request) -> Reply:
        text, images = self.decode(request)
        return chat_answer(self.brain.answer(role_of(text), text, images))
