"""An optional chat model that writes the revised prompt of a Responses turn (`GOUACHE_PLANNER_URL`: any
OpenAI-compatible `/chat/completions` endpoint). The rule-based turn decision (`service/turns.py`) still
decides generate vs. edit and how to edit; the chat model only rewrites the prompt, and any failure falls
back to the rule-based prompt."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx

from gouache.service.turns import TurnDecision

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You write prompts for an image generator. Given the prompt of the current image (if any) and the "
    "user's new message, answer with one self-contained image prompt that describes the whole picture "
    "the user wants now. Answer with the prompt only, no quotes, at most 60 words."
)


class ChatPromptWriter:
    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def revise(self, decision: TurnDecision, text: str, previous_prompt: str | None) -> TurnDecision:
        context = (
            f"Current image prompt: {previous_prompt}\n" if previous_prompt else "There is no image yet.\n"
        )
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"{context}User message: {text}"},
            ],
            "temperature": 0,
        }
        try:
            response = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
            response.raise_for_status()
            prompt = str(response.json()["choices"][0]["message"]["content"]).strip().strip('"')
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("planner chat model failed (%s); using the rule-based prompt", exc)
            return decision
        if not prompt:
            return decision
        return replace(
            decision,
            revised_prompt=prompt[:4000],
            reply=decision.reply.replace(decision.revised_prompt, prompt),
        )
