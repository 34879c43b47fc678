"""An OpenAI-compatible AiHubMix gateway on loopback, with simulated answers and faults on demand.

Standard library only. Tests, examples, benchmarks and the demo mode talk to it over a real socket,
with our own client or with the official ``openai`` SDK::

    with Simulator() as simulator:
        client = openai.OpenAI(base_url=simulator.base_url, api_key="sk-test")

or from a shell: ``python -m aihubmix_magic.simulator --port 8765``.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/responses``, streamed or
not, framed as the recorded OpenAI streams are (see the project's PROTOCOL.md). Every ``/v1`` request
needs ``Authorization: Bearer <key>``. Nothing ever leaves the machine.

Also AiHubMix's public model catalog ``GET /api/v1/models`` (prices per 1M tokens and capabilities for
every model in ``MODELS``, plus ``sim-free`` at price 0, ``sim-cached`` with a cache_read price and
``sim-unpriced`` without prices; the
catalog's query filters work), and the account endpoints ``/v1/dashboard/billing/subscription``,
``/dashboard/billing/usage``, ``/dashboard/billing/remain`` and ``/api/status``, with faults of their own
(``Simulator(catalog=..., billing=...)``, ``CATALOG_FAULTS``, ``BILLING_FAULTS``).

The answer is deterministic Markdown derived from the model name and the last user message. Words in
that message act as directives: ``heading``, ``bold``, ``code``, ``list``/``bullet``, ``table``,
``json`` and ``words=N`` (N filler words, for long answers). Images are counted, ``max_tokens`` /
``max_output_tokens`` truncate, and thinking models (``-think``, ``deepseek-reasoner``, ``o4-mini``,
or a reasoning effort in the request) stream a short reasoning text first.

Faults are chosen by the model name; every fault model starts with ``sim-`` and any other ``sim-``
name (``sim-echo``) is a normal model. ``FAULT_MODELS`` (and ``--help``) lists them all:

* HTTP errors: ``sim-400``, ``sim-401``, ``sim-403``, ``sim-404``, ``sim-unknown-model``, ``sim-503``,
  ``sim-429``, ``sim-500``, ``sim-flaky-429-N``, ``sim-flaky-500-N``, ``sim-retry-after-S``,
  ``sim-html``, ``sim-html-200``, ``sim-408``, ``sim-409``, ``sim-flaky-408-N``, ``sim-flaky-409-N``,
  ``sim-retry-after-ms-N``, ``sim-retry-after-date-S``, ``sim-should-retry-N``, ``sim-500-no-retry``,
  ``sim-400-echo-headers``, ``sim-echo-headers`` (both quote the Authorization header back).
* Broken 200 answers: ``sim-200-error``, ``sim-null-choices``, ``sim-garbage``, ``sim-bad-json``.
* Broken streams: ``sim-drop-K``, ``sim-stall-K``, ``sim-error-event``, ``sim-error-event-flat``,
  ``sim-failed``, ``sim-incomplete``.
* Timing: ``sim-slow``, ``sim-tps-N``, ``sim-latency-MS``.
* Rate limits: ``Simulator(rate_limit=10.0)`` (``--rate-limit 10``) puts one token bucket of 10 requests a
  second (a burst of ``rate_limit_burst``, default one second's worth) in front of the two generation
  endpoints, for every model and key: a request over it gets HTTP 429 at once, with ``retry-after-ms``
  (when the next token comes) and ``retry-after`` (the same, rounded up to whole seconds). With
  ``rate_limit_headers=True`` (``--rate-limit-headers``) every answer also carries OpenAI's
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests``
  (the time until the bucket is full again, e.g. ``1.5s``). ``rate_limited`` counts the 429s sent.
* Valid but unusual framing: ``sim-crlf``, ``sim-cr``, ``sim-comments``, ``sim-multiline``,
  ``sim-no-done``, ``sim-with-done``, ``sim-no-event-lines``, ``sim-no-usage``,
  ``sim-usage-in-finish``, ``sim-empty-output``, ``sim-unknown-events``, ``sim-tools``,
  ``sim-chunked-utf8``.
* Tools: when a request offers functions (``tools``), every normal model calls the first one with
  arguments filled in from its schema and, once the result is sent back, answers with it
  (``sim-tool-call`` does only that); ``sim-parallel-tools`` calls several at once; ``sim-tools-forever``
  never stops calling (for a step limit). Arguments stream split across chunks.
* Web search: ``web_search_options`` (chat) or a ``web_search`` tool (responses) gives an answer that
  cites two sources (``url_citation`` annotations); ``sim-no-web`` refuses it with HTTP 400.
"""

from __future__ import annotations

import argparse
import dataclasses
import email.utils
import functools
import itertools
import json
import math
import random
import re
import select
import socket
import socketserver
import sys
import textwrap
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import ssl

__all__ = ["BILLING_FAULTS", "CATALOG_FAULTS", "CATALOG_MODELS", "FAULT_MODELS", "MODELS", "RecordedRequest",
           "Simulator", "main"]

_OWNERS = {
    "gpt-4o-mini": "OpenAI",
    "gpt-4o": "OpenAI",
    "gpt-4.1-mini": "OpenAI",
    "gpt-5.4": "OpenAI",
    "o4-mini": "OpenAI",
    "claude-sonnet-4-5": "Anthropic",
    "claude-sonnet-4-5-think": "Anthropic",
    "claude-haiku-4-5": "Anthropic",
    "gemini-2.5-flash": "Google",
    "gemini-2.5-flash-nothink": "Google",
    "gemini-3.1-pro-preview": "Google",
    "deepseek-chat": "DeepSeek",
    "deepseek-reasoner": "DeepSeek",
    "qwen3-coder": "Alibaba",
    "Kimi-K2-0905": "Moonshot",
}
MODELS: list[str] = list(_OWNERS)

FAULT_MODELS: dict[str, str] = {
    "sim-echo": "a normal model (so is any other sim-* name not listed here)",
    "sim-401": "HTTP 401 'Invalid token' (AiHubMix body)",
    "sim-403": "HTTP 403 insufficient_user_quota",
    "sim-404": "HTTP 404 model_not_found (OpenAI-style body)",
    "sim-unknown-model": "HTTP 400 'Incorrect model ID' (AiHubMix body)",
    "sim-400": "HTTP 400 'bad channel id' (AiHubMix body; nothing about the model)",
    "sim-503": "HTTP 503 'Incorrect model ID', as the AiHubMix docs describe it",
    "sim-429": "always HTTP 429 'Too many requests', with retry-after-ms: 20",
    "sim-500": "always HTTP 500 upstream_error",
    "sim-flaky-429-N": "the first N requests for this name get 429 (retry-after-ms: 20), then answers",
    "sim-flaky-500-N": "the first N requests for this name get 500, then answers",
    "sim-retry-after-S": "always HTTP 429 with retry-after: S (seconds)",
    "sim-html": "HTTP 502 with an nginx HTML page",
    "sim-html-200": "HTTP 200 with a proxy's HTML sign-in page (text/html, longer than 200 characters)",
    "sim-408": "always HTTP 408 Request Timeout",
    "sim-409": "always HTTP 409 Conflict",
    "sim-flaky-408-N": "the first N requests for this name get 408, then answers",
    "sim-flaky-409-N": "the first N requests for this name get 409, then answers",
    "sim-retry-after-ms-N": "always HTTP 429 with retry-after-ms: N (milliseconds)",
    "sim-retry-after-date-S": "always HTTP 429 with retry-after: an HTTP date S seconds ahead",
    "sim-should-retry-N": "the first N requests for this name get 400 with x-should-retry: true, then answers",
    "sim-500-no-retry": "always HTTP 500 with x-should-retry: false",
    "sim-echo-headers": "answers with the request's headers (Authorization included), like httpbin's /headers",
    "sim-400-echo-headers": "HTTP 400 whose error message quotes the request's headers, Authorization included",
    "sim-200-error": "HTTP 200 whose JSON body is an error (also when stream=true)",
    "sim-null-choices": "HTTP 200 with choices: null (responses: output: null) and zero usage",
    "sim-garbage": "non-stream: a text/plain body that is not JSON; stream: junk lines between events",
    "sim-bad-json": "non-stream: invalid JSON body; stream: an invalid data line after 3 tokens",
    "sim-drop-K": "stream: K tokens (sim-drop: 5), then the connection is cut; non-stream: no response",
    "sim-stall-K": "stream: K tokens (sim-stall: 2), then silence until the client leaves (max 120 s)",
    "sim-slow": "0.2 s between streamed tokens",
    "sim-tps-N": "N streamed tokens per second (sim-tps: 10)",
    "sim-latency-MS": "wait MS milliseconds before answering (sim-latency: 500)",
    "sim-error-event": "stream: 3 tokens, then an error event (responses: nested form); non-stream: 500",
    "sim-error-event-flat": "like sim-error-event, with the flat responses error event",
    "sim-failed": "responses: 3 tokens, then response.failed (non-stream: status failed); chat: error event",
    "sim-incomplete": "stops after 4 tokens: chat finish_reason length, responses status incomplete",
    "sim-crlf": "stream lines end with CRLF",
    "sim-cr": "stream lines end with CR",
    "sim-comments": "a ': keep-alive' comment line before every event",
    "sim-multiline": "every JSON payload split across two data: lines",
    "sim-no-done": "chat stream without data: [DONE]",
    "sim-with-done": "responses stream followed by data: [DONE]",
    "sim-no-event-lines": "responses stream without event: lines",
    "sim-no-usage": "chat stream without a usage chunk, even if asked",
    "sim-usage-in-finish": "chat stream with usage on the finish_reason chunk",
    "sim-empty-output": "responses: response.completed carries output: []",
    "sim-unknown-events": "unknown event types, unknown fields and obfuscation padding",
    "sim-tools": 'calls get_weather({"city": "Paris"}); answers in text once a tool result is sent',
    "sim-chunked-utf8": "answer with multi-byte characters, sent in HTTP chunks of 7 bytes",
    "sim-cached": "a normal answer whose usage reports half of the input tokens as cached (prompt caching)",
    "sim-tool-call": "calls the first offered tool with arguments from its schema, then answers with the result",
    "sim-parallel-tools": "calls every offered tool at once (the only one twice), then answers with the results",
    "sim-tools-forever": "calls the first offered tool again after every result: never answers in text",
    "sim-no-web": "HTTP 400 'does not support web_search' when web search is asked for",
}

_REASONING_MODELS = {"deepseek-reasoner", "o4-mini"}
_VOCABULARY = (
    "apple bright calm careful clear cloud early easy field friendly garden gentle green harbor honest idea "
    "kind lantern light little meadow morning ocean open orchard paper pebble plain quiet river road simple "
    "small steady stone story summer sunny tidy useful valley warm window winter wonder yellow"
).split()
_MAX_WORDS = 500_000
_STALL_LIMIT = 120.0
_DEFAULT_NUMBERS = {  # the N, K, S or MS of a numbered fault model whose name has none
    "flaky-429": 1,
    "flaky-500": 1,
    "flaky-408": 1,
    "flaky-409": 1,
    "retry-after": 1,
    "retry-after-ms": 1000,
    "retry-after-date": 2,
    "should-retry": 1,
    "drop": 5,
    "stall": 2,
    "tps": 10,
    "latency": 500,
}
_ENDINGS = {  # faults that end a stream early
    "error-event": "error",
    "error-event-flat": "error",
    "failed": "failed",
    "drop": "drop",
    "stall": "stall",
}
_ECHOED: dict[str, Any] = {  # request fields that a response object repeats, with their defaults
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": False,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
}
_GARBAGE_LINES = ("garbage line without colon", ": keep-alive", "id: 7", "retry: 1000")
_UNICODE_SAMPLE = "Unicode check: héllo — 你好 😀😀😀."  # 7-byte pieces always split one of the 😀
_TOOL_ARGUMENT_PIECES = ('{"city', '": "', "Par", 'is"}')
_HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
_PROXY_SIGN_IN = (
    "<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body>"
    "<h1>Corporate network: sign in to continue</h1><p>Your request to the internet was intercepted by the "
    "proxy. Please sign in with your company account to reach external sites.</p>"
    '<form method="post" action="/login"><input name="user"><input name="password" type="password"></form>'
    "</body></html>"
)
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class RecordedRequest:
    """One HTTP request as the simulator received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float


# --- the answer ------------------------------------------------------------------------------------


def _tokenize(text: str) -> list[str]:
    """Split text into tokens (a word and the whitespace after it) that join back to the text."""
    return re.findall(r"\S+\s*|\s+", text)


def _sentences(rng: random.Random, words: list[str]) -> str:
    """Capitalised sentences of 5 to 12 words made of ``words``."""
    sentences = []
    start = 0
    while start < len(words):
        end = start + rng.randint(5, 12)
        if len(words) - end < 3:  # no one-word sentence at the end
            end = len(words)
        sentence = " ".join(words[start:end])
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        start = end
    return " ".join(sentences)


def _filler(rng: random.Random, count: int) -> str:
    return _sentences(rng, rng.choices(_VOCABULARY, k=count))


def _quote(prompt: str) -> str:
    words = prompt.split()
    return " ".join(words[:8]) + (" …" if len(words) > 8 else "")


def _has_word(prompt: str, pattern: str) -> bool:
    return re.search(rf"\b(?:{pattern})\b", prompt, re.IGNORECASE) is not None


# --- what the prompt asks for ----------------------------------------------------------------------
#
# The answer takes the shape the prompt asks for, as a real model's would, found with word lists and
# patterns (still deterministic; nothing is learned):
#
# * a choice among options the prompt names ("positive, neutral or negative", "yes or no", a schema's
#   enum) picks one, by a small word-list sentiment and keyword match on the text being judged;
# * "one word", "one sentence", "N sentences", "N bullet points", "at most N words", "a table" are honoured;
# * JSON has the fields that the prompt or the schema names, with values of the right types;
# * code (``-f code``'s system line, "write a function ...") is one fenced block in the language asked;
# * the prompts aihubmix_magic builds are recognised: the notebook context that ``--context`` appends (the
#   answer names the objects and the columns sent) and the failing cell that ``%aihubmix fix`` sends (the
#   answer names the error and, for a misspelt name, corrects it).
#
# Prose still opens with "*Simulated answer from MODEL.*"; a short answer (a label, a JSON object, a code
# block) carries no marker of its own, so that it can be used as a real one would: the client's footer and
# the demo note say that it is simulated.

# how aihubmix_magic introduces what it adds to a prompt (tests/test_context.py keeps these in step)
_CONTEXT_HEADING = "Context from my Jupyter notebook"
_FIX_HEADING = "A cell in my Jupyter notebook failed"
_CELL_LABEL = "The cell"
_ERROR_LABEL = "The error"

_NUMBER_WORDS = {
    word: number
    for number, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}
_COUNT = r"(\d+|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_STOPWORDS = set(
    "a an the and or of to in on for with by at from as is are was were be been it its this that these those "
    "what which who whom how why when where do does did can could should would will shall may might must "
    "i me my we our you your he she they them their please give write answer reply tell explain describe "
    "one two three word words sentence sentences short brief about into than then only just each every "
    "some any more most less few many much very really also not no yes".split()
)

# sentiment: word -> weight (positive or negative); "not", "never", "no" before a word flip it; "a bit",
# "slightly", "a little" halve the next word; "very", "really", "so" strengthen it; a clause before "but"
# counts half (the part after it is what the writer means)
_SENTIMENT: dict[str, float] = {}
for _words, _weight in (
    ("love loved loves lovely fantastic superb excellent brilliant perfect perfectly amazing awesome "
     "wonderful great best outstanding delighted recommend recommended exactly favourite favorite "
     "terrific flawless impressive", 2.0),
    ("good nice like liked likes happy pleased comfortable comfy sturdy solid quick quiet easy handy well "
     "works worth value useful reliable fast smooth soft pretty lasts lasted survived survives enjoy "
     "enjoyed helpful clean fits fit cheerful beautiful elegant light accurate generous friendly", 1.0),
    ("fine okay ok decent adequate", 0.5),
    ("broke broken cracked dent dented nightmare terrible awful horrible worst useless refund defective "
     "faulty damaged empty hate hated disappointed disappointing waste rubbish junk unusable", -2.0),
    ("bad poor leak leaks leaking leaked stopped cheap flimsy slow slowly late loud noisy hot heavy heavier "
     "smaller thin wobble wobbles wobbly flicker flickers flickering headache split chipped smell smells "
     "smelly dropping overpriced expensive problem problems issue issues wrong missing lost torn tore "
     "never uncomfortable annoying rude fails failed failing sad angry unhappy difficult hard boring "
     "ugly dirty", -1.0),
):
    _SENTIMENT.update(dict.fromkeys(_words.split(), _weight))
for _words, _weight in (  # food and produce, where "soft" or "hard" say little and taste says much
    ("delicious yummy scrumptious mouthwatering", 2.0),
    ("tasty juicy sweet crisp crunchy ripe fresh fragrant flavourful flavorful tender succulent aromatic "
     "moist", 1.0),
    ("rotten mouldy moldy mushy tasteless inedible bruised disgusting gross spoiled spoilt rancid", -2.0),
    ("bitter tough stale sour bland watery overripe unripe underripe soggy mediocre meh dull", -1.0),
):
    _SENTIMENT.update(dict.fromkeys(_words.split(), _weight))
_NEGATORS = {"not", "no", "never", "nothing", "without", "hardly", "isn't", "wasn't", "don't", "doesn't",
             "didn't", "aren't", "won't", "can't", "cannot", "nor"}
_SOFTENERS = {"bit", "slightly", "little", "somewhat", "rather", "mildly"}
_BOOSTERS = {"very", "really", "so", "extremely", "super", "incredibly", "too"}
_SENTIMENT_LABELS = {
    "positive": 1, "negative": -1, "neutral": 0, "mixed": 0, "good": 1, "bad": -1, "happy": 1,
    "unhappy": -1, "satisfied": 1, "dissatisfied": -1, "pos": 1, "neg": -1, "favourable": 1,
    "favorable": 1, "unfavourable": -1, "unfavorable": -1, "praise": 1, "complaint": -1,
}
# keywords for topic labels a prompt or a schema's enum may offer (the label itself always counts)
_TOPIC_WORDS = {
    "delivery": "arrived arrival arrive delivery delivered shipping shipped package packaging packed parcel "
                "courier post postage late took weeks days dispatch",
    "shipping": "arrived arrival delivery delivered shipped package packed parcel courier late took weeks",
    "price": "price priced prices overpriced cheap cheaper expensive money value cost costs worth half "
             "bargain afford affordable",
    "value": "price priced overpriced cheap expensive money value cost worth half bargain",
    "service": "service support customer email refund return returns replacement answered staff helpful "
               "rude seller",
    "support": "service support customer email refund return replacement answered staff helpful",
    "comfort": "comfortable comfort uncomfortable straps strap ear ears cushions soft fits fit warm wear "
               "light heavy",
    "quality": "broke broken quality build built made sturdy solid cracked leaking leaks stopped material "
               "durable split chipped seam zip zips glaze dent works working flickers keys",
    "design": "colour colours color colors looks look design size style pretty glaze photos",
    "sound": "sound noise cancelling music podcasts bass loud quiet",
    "battery": "battery charge charging charges lasts",
    "performance": "fast slow quick speed performance boils switches",
    "usability": "easy hard setup assembly app software button switching",
}
_YES_WORDS = ("yes", "no")
_SUMMARY = r"summari[sz]e|summary|tl;?dr|in short|gist"


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word.lower(), 1)


def _words_of(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z'-]*", text.lower())


def _sentence_split(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]


def _sentiment(text: str) -> tuple[float, float, float]:
    """(score, positive evidence, negative evidence) of ``text`` from the word list."""
    total = positive = negative = 0.0
    for sentence in _sentence_split(text):
        clauses = re.split(r"\bbut\b|\bhowever\b|\balthough\b|\bthough\b", sentence, flags=re.IGNORECASE)
        for index, clause in enumerate(clauses):
            weight_of_clause = 0.5 if index < len(clauses) - 1 else 1.0
            words = _words_of(clause)
            for position, word in enumerate(words):
                weight = _SENTIMENT.get(word)
                if weight is None:
                    continue
                before = words[max(0, position - 3) : position]
                if any(w in _NEGATORS for w in before) and word not in _NEGATORS:
                    weight = -weight * 0.75
                if any(w in _SOFTENERS for w in before[-2:]):
                    weight *= 0.5
                elif before[-1:] and before[-1] in _BOOSTERS:
                    weight *= 1.5
                weight *= weight_of_clause
                total += weight
                if weight > 0:
                    positive += weight
                else:
                    negative -= weight
    return total, positive, negative


def _polarity(text: str) -> int:
    """1 (positive), -1 (negative) or 0 (neutral or mixed)."""
    score = _sentiment(text)[0]
    return 1 if score >= 1 else -1 if score <= -1 else 0


class _Prompt(NamedTuple):
    """The last user message taken apart: the request, the text it judges, and what aihubmix_magic added."""

    request: str  # the user's own words, without the context section
    judged: str  # the text being judged, labelled or summarised ("" if there is none)
    instruction: str  # the request without the judged text
    context: str  # the notebook context section ("" if none)
    system: str


def _parse_prompt(prompt: str, system: str) -> _Prompt:
    request, context = prompt, ""
    at = prompt.find(_CONTEXT_HEADING)
    if at == 0 or (at > 0 and prompt[at - 2 : at] == "\n\n"):
        request, context = prompt[:at].rstrip(), prompt[at:]
    judged, instruction = _choice_parts(request) or _judged_text(request)
    return _Prompt(request, judged, instruction, context, system)


# a segment of a prompt that only says how to answer ("Answer with one word."), and one that only labels
# what follows ("Review:"); neither is part of the item being judged
_HOW_TO_ANSWER = re.compile(
    r"(?i)^(?:please[ ,]+)?(?:answer|reply|respond|return|output|give|say|write|use|pick|choose|in one word|"
    r"one word|a single word|single word|only the|no explanation|nothing else|just the|lower ?case)\b")
_ITEM_LABEL = re.compile(
    r"(?i)^(?:the\s+)?(?:review|text|input|comment|sentence|message|tweet|e-?mail|feedback|passage|document|"
    r"statement|post|quote|headline|title|item|product review|customer review)\s*:$")


def _choice_parts(request: str) -> tuple[str, str] | None:
    """(the item, the instruction) of a prompt that offers a choice ("positive, neutral or negative"),
    wherever the item stands: before the question, after it, after a label ("Review: ..."), in quotes,
    mid-line. The prompt is cut into segments (sentences, lines, and after a colon); the segment naming
    the options, the questions and the segments around it that only say how to answer, and labels are the
    instruction; the rest is the item. None when the prompt offers no choice or nothing is left (the other rules decide)."""
    segments = [part.strip() for part in re.split(r"(?<=[.!?:])\s+|\n+", request) if part.strip()]
    scored = [(len(_options(part)), index) for index, part in enumerate(segments)]
    count, at = max(scored, key=lambda pair: (pair[0], -pair[1]), default=(0, 0))
    if count < 2:
        return None
    def instruction(part: str) -> bool:  # says how to answer, or asks the question ("is it a complaint?")
        return bool(_HOW_TO_ANSWER.match(part)) or part.endswith("?")

    start = end = at
    while start > 0 and instruction(segments[start - 1]):
        start -= 1
    while end + 1 < len(segments) and instruction(segments[end + 1]):
        end += 1
    item = [part for index, part in enumerate(segments)
            if not start <= index <= end and not _ITEM_LABEL.match(part)]
    judged = " ".join(item).strip().strip("\"“”'").strip()
    if not re.search(r"[A-Za-z]", judged):
        return None
    return judged, " ".join(segments[start:end + 1])


def _judged_text(request: str) -> tuple[str, str]:
    """(the text being judged, the instruction): a labelled part ("Review: ..."), the paragraphs after the
    first, a quotation, or the words after the question's first "?" or ":"."""
    labelled = re.search(
        r"^[ \t]*(?:review|text|input|comment|sentence|message|tweet|e-?mail|feedback|passage|document|"
        r"statement|post|quote|headline|title)[ \t]*:[ \t]*",
        request,
        re.IGNORECASE | re.MULTILINE,
    )
    if labelled and request[labelled.end() :].strip():
        return request[labelled.end() :].strip(), request[: labelled.start()].strip()
    paragraphs = re.split(r"\n[ \t]*\n", request.strip(), maxsplit=1)
    if len(paragraphs) == 2 and paragraphs[1].strip():
        return paragraphs[1].strip(), paragraphs[0].strip()
    quoted = re.search(r"[\"“]([^\"”]{12,})[\"”]", request)
    if quoted:
        return quoted.group(1).strip(), (request[: quoted.start()] + request[quoted.end() :]).strip()
    split = re.search(r"[?:]\s+(?=\S)", request)
    if split and "\n" not in request[: split.start()]:
        rest = request[split.end() :].strip()
        if not re.match(r"(?i)(answer|reply|respond|one word|use|give|be|say|in one)\b", rest):
            return rest, request[: split.end()].strip()
    return "", request.strip()


# -- choices -----------------------------------------------------------------------------------------


def _options(instruction: str) -> list[str]:
    """The options an instruction offers: "positive, neutral or negative", "yes/no", "cat or dog?"."""
    pattern = re.compile(
        r"((?:[A-Za-z][\w-]*\s*(?:,|/)\s*)*[A-Za-z][\w-]*)\s*,?\s+or\s+(?:an?\s+|the\s+)?([A-Za-z][\w-]*)"
        r"|([A-Za-z][\w-]*(?:\s*/\s*[A-Za-z][\w-]*)+)",
    )
    for match in pattern.finditer(instruction):
        if match.group(3):
            options = [o.strip() for o in match.group(3).split("/")]
        else:
            head = [o.strip() for o in re.split(r"[,/]", match.group(1))]
            head = [re.sub(r"^(?:an?|the)\s+", "", o) for o in head]
            head = [o.split()[-1] for o in head if o]
            options = head[-4:] + [match.group(2)]
            # "Is this review positive" -> only the word before "or" and the ones joined to it by commas
            if "," not in match.group(1) and "/" not in match.group(1):
                options = options[-2:]
        options = [o for o in options if o.lower() not in _STOPWORDS or o.lower() in _YES_WORDS]
        if sum(o.lower() in _SENTIMENT_LABELS for o in options) >= 2:  # "which fits, negative or positive"
            options = [o for o in options if o.lower() in _SENTIMENT_LABELS]
        if len(options) >= 2 and _is_choice(options, instruction):
            return options
    return []


def _is_choice(options: list[str], instruction: str) -> bool:
    lowered = {o.lower() for o in options}
    if lowered & set(_SENTIMENT_LABELS) or lowered <= {"yes", "no", "true", "false", "maybe"}:
        return True
    return _has_word(instruction, r"one word|single word|one of|label|classify|categori[sz]e|which|pick|choose")


def _choose(options: list[str], judged: str, instruction: str = "") -> str:
    """The option that fits ``judged`` best: by sentiment, yes/no, or keywords; else the first."""
    lowered = [o.lower() for o in options]
    if all(o in _SENTIMENT_LABELS for o in lowered):
        score, positive, negative = _sentiment(judged)
        polarity = 1 if score >= 1 else -1 if score <= -1 else 0
        values = [_SENTIMENT_LABELS[o] for o in lowered]
        if polarity == 0:
            if "mixed" in lowered and positive and negative:
                return options[lowered.index("mixed")]
            if "neutral" in lowered:
                return options[lowered.index("neutral")]
            # no neutral option: the sign of weak evidence decides; a tie is "mixed", or the first option
            if score == 0 and "mixed" in lowered:
                return options[lowered.index("mixed")]
            polarity = 1 if score > 0 else -1 if score < 0 else values[0]
        return options[values.index(polarity)] if polarity in values else options[0]
    if set(lowered) <= {"yes", "no", "true", "false", "maybe"}:
        yes = _yes(instruction, judged)
        for option in options:
            if option.lower() in (("yes", "true") if yes else ("no", "false")):
                return option
        return options[0]
    return _keyword_choice(options, judged or instruction)


def _yes(instruction: str, judged: str) -> bool:
    """Whether the answer to a yes/no question about ``judged`` is yes."""
    if _has_word(instruction, r"positive|happy|satisfied|like|likes|recommend|good|pleased|praise"):
        return _polarity(judged or instruction) > 0
    if _has_word(instruction, r"negative|unhappy|complain\w*|problem|bad|angry|disappointed|broken|faulty"):
        return _polarity(judged or instruction) < 0
    asked = {w for w in _words_of(instruction) if w not in _STOPWORDS and len(w) > 2}
    for word in list(asked):
        asked.update(_TOPIC_WORDS.get(word, "").split())
    if not asked or not judged:
        return _polarity(judged or instruction) >= 0
    return bool(asked & set(_words_of(judged)))


def _keyword_choice(options: list[str], text: str) -> str:
    words = _words_of(text)
    counts = []
    for option in options:
        keys = {option.lower(), option.lower().rstrip("s")}
        keys.update(_TOPIC_WORDS.get(option.lower(), "").split())
        counts.append(sum(1 for w in words if w in keys or w.rstrip("s") in keys))
    best = max(counts)
    return options[counts.index(best)] if best else options[0]


def _reason(label: str, judged: str) -> str:
    """A one-line reason for a label: the sentence of the judged text that supports it most."""
    sentences = _sentence_split(judged)
    if not sentences:
        return ""
    direction = _SENTIMENT_LABELS.get(label.lower())
    if direction is None:
        keys = {label.lower(), *_TOPIC_WORDS.get(label.lower(), "").split()}
        best = max(sentences, key=lambda s: sum(w in keys for w in _words_of(s)))
    elif direction == 0:
        best = sentences[-1]
    else:
        best = max(sentences, key=lambda s: _sentiment(s)[0] * direction)
    best = best if best[-1:] in ".!?" else best.rstrip(";,") + "."
    return f"the text says “{best}”"


def _case_like(option: str, options: list[str]) -> str:
    """Options are answered in lower case when the prompt writes any of them so (mid-sentence)."""
    return option.lower() if any(o.islower() for o in options) else option


# -- shape -------------------------------------------------------------------------------------------


class _Shape(NamedTuple):
    one_word: bool
    max_words: int | None
    sentences: int | None
    paragraphs: int | None
    bullets: int | None  # None: no list asked for; 0: "a list" (three items after the prose)


def _shape(text: str) -> _Shape:
    one_word = _has_word(text, r"(?:one|a single|single|1)[ -]word|in a word")
    limit = re.search(
        rf"\b(?:at most|no more than|up to|under|maximum of|max|in|within|fewer than|less than)\s+{_COUNT}"
        rf"\s+words\b|\b{_COUNT}\s+words\s+or\s+(?:less|fewer)\b|\b{_COUNT}-word\b",
        text,
        re.IGNORECASE,
    )
    max_words = _number(next(g for g in limit.groups() if g)) if limit else None
    sentences = re.search(rf"\b(?:{_COUNT}|a single|a|single)[ -](?:short\s+)?sentences?\b", text, re.I)
    one_line = _has_word(text, r"one[ -]line(?:r)?|a single line|in one line|tl;?dr")
    count_sentences = _number(sentences.group(1) or "1") if sentences else (1 if one_line else None)
    paragraphs = re.search(rf"\b(?:{_COUNT}|a|one)\s+(?:short\s+)?paragraphs?\b", text, re.I)
    count_paragraphs = _number(paragraphs.group(1) or "1") if paragraphs else None
    bullets = re.search(
        rf"\b{_COUNT}\s+(?:short\s+|key\s+|main\s+|quick\s+)?(?:bullet[ -]?points?|bullets|points|items|tips|"
        rf"ideas|reasons|steps|examples|things|facts|questions|advantages|disadvantages|benefits)\b"
        rf"|\blist\s+of\s+(?:the\s+)?{_COUNT}\b",
        text,
        re.IGNORECASE,
    )
    if bullets:
        count_bullets: int | None = _number(next(g for g in bullets.groups() if g))
    elif _has_word(text, r"bullet[ -]?points?|bullets|bulleted"):
        count_bullets = 3
    elif _has_word(text, r"lists?"):
        count_bullets = 0
    else:
        count_bullets = None
    return _Shape(one_word, max_words, count_sentences, count_paragraphs, count_bullets)


# -- JSON --------------------------------------------------------------------------------------------


def _named_fields(text: str) -> list[str]:
    """The fields a prompt names: "with fields name and age", "keys `title`, `year` and `rating`"."""
    match = re.search(
        r"\b(?:with|having|containing|has|the|of)\s+(?:the\s+|these\s+|two\s+|three\s+|four\s+)?"
        r"(?:fields?|keys?|properties|attributes|entries)\b\s*(?:called|named|:)?\s*([^.?!\n]+)",
        text,
        re.IGNORECASE,
    )
    if not match:
        return []
    fields = []
    for piece in re.split(r",|\band\b|;", match.group(1)):
        words = [w.strip("`'\"") for w in piece.split()]
        words = [w for w in words if w and w.lower() not in ("the", "a", "an", "for", "with", "called", "named")]
        if 1 <= len(words) <= 2 and re.fullmatch(r"[A-Za-z_][\w-]*", words[0]):
            fields.append(words[0])
        elif fields:
            break
    return list(dict.fromkeys(fields))


def _topic(request: str) -> str:
    match = re.search(r"\babout\s+(?:the\s+|a\s+|an\s+)?([A-Za-z][\w -]{2,40}?)(?=\s+(?:for|to|with|in)\b|[,.?!\n]|$)",
                      request)
    if match:
        return match.group(1).strip()
    words = [w for w in _words_of(request) if w not in _STOPWORDS and len(w) > 3]
    return " ".join(words[:3]) or "the question"


def _string_for(name: str, ask: _Prompt) -> str:
    key = name.lower()
    topic = _topic(ask.request)
    known = {
        "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace", "city": "Paris",
        "country": "France", "email": "ada@example.com", "date": "2024-05-01", "language": "Python",
        "colour": "green", "color": "green", "unit": "mm", "currency": "EUR", "url": "https://example.com",
    }
    if key in known:
        return known[key]
    if key in ("question", "prompt"):
        return f"Which statement about the {topic} is true?"
    if key in ("answer", "correct_answer", "solution"):
        return "Option A"
    if key in ("summary", "description", "explanation", "reason", "rationale", "text", "details"):
        if ask.judged:
            return _sentence_split(ask.judged)[0]
        return f"A short {key} about the {topic}."
    if key in ("title", "headline", "topic", "subject"):
        return topic[:1].upper() + topic[1:]
    if key in ("sentiment", "label", "tone", "mood"):
        return ("positive", "neutral", "negative")[1 - _polarity(ask.judged or ask.request)]
    if key in ("category", "type", "kind"):
        return "general"
    words = [w for w in _words_of(ask.request) if w not in _STOPWORDS and len(w) > 3][:3]
    return " ".join(words) or key.replace("_", " ")


def _number_for(name: str, integer: bool) -> int | float:
    key = name.lower()
    if "age" in key.split("_") or key == "age":
        return 36
    if "year" in key:
        return 2024
    if "population" in key:
        return 2_100_000
    if any(word in key for word in ("price", "cost", "amount", "total")):
        return 12 if integer else 9.99
    if any(word in key for word in ("score", "rating", "stars")):
        return 4 if integer else 4.5
    if any(word in key for word in ("percent", "probability", "confidence")):
        return 80 if integer else 0.8
    return 3 if integer else 3.5


def _kind_of_field(name: str) -> str:
    key = name.lower()
    if re.search(r"(?:^|_)(?:age|year|count|number|num|n|population|size|rank|id|quantity|stars)(?:$|_)", key):
        return "integer"
    if re.search(r"price|cost|amount|score|rating|percent|probability|confidence|weight|height", key):
        return "number"
    if re.match(r"(?:is|has|can|should)_|^(?:ok|valid|correct|done|active)$", key):
        return "boolean"
    if re.search(r"(?:tags|items|list|choices|options|keywords|steps|ingredients|examples|names)$", key):
        return "array"
    return "string"


def _json_value(rng: random.Random, schema: Any, ask: _Prompt, name: str = "answer") -> Any:
    """A value of the type that a JSON schema declares, with every listed property for objects; an enum
    is a choice made from the judged text, a string a phrase that fits the field's name."""
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("enum"):
        options = [str(o) for o in schema["enum"]]
        chosen = _choose(options, ask.judged or ask.request, ask.instruction)
        return schema["enum"][options.index(chosen)]
    kind = schema.get("type", _kind_of_field(name))
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        names = list(properties) + [n for n in schema.get("required") or [] if n not in properties]
        return {field: _json_value(rng, properties.get(field), ask, field) for field in names}
    if kind == "array":
        count = re.search(rf"\b{_COUNT}\s+(?:\w+\s+)?{re.escape(name.lower().rstrip('s'))}", ask.request, re.I)
        size = _number(count.group(1)) if count else 3
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        if items.get("type", "string") == "string" and not items.get("enum"):
            if name.lower() in ("choices", "options", "answers"):
                return [f"Option {chr(65 + i)}" for i in range(min(size, 26))]
            words = [w for w in _words_of(ask.request) if w not in _STOPWORDS and len(w) > 3]
            return [(words[i] if i < len(words) else f"item {i + 1}") for i in range(size)]
        return [_json_value(rng, items, ask, name.rstrip("s")) for _ in range(size)]
    if kind == "integer":
        return _number_for(name, True)
    if kind == "number":
        return _number_for(name, False)
    if kind == "boolean":
        return True if not ask.judged else _polarity(ask.judged) >= 0
    if kind == "null":
        return None
    return _string_for(name, ask)


def _json_answer(rng: random.Random, model: str, lead: str, schema: dict | None, ask: _Prompt) -> str:
    if schema is not None:
        value = _json_value(rng, {"type": "object", **schema}, ask)
    elif fields := _named_fields(ask.request):
        value = {field: _json_value(rng, None, ask, field) for field in fields}
    elif options := _options(ask.instruction):
        value = {"answer": _case_like(_choose(options, ask.judged, ask.instruction), options)}
    else:
        answer = (lead + " " + _filler(rng, rng.randint(8, 16))).strip()
        value = {"answer": answer, "model": model, "words": len(answer.split())}
    return json.dumps(value, indent=2, ensure_ascii=False)


# -- code --------------------------------------------------------------------------------------------

_LANGUAGES = {  # a word in the prompt -> the fence's language
    "python": "python", "javascript": "javascript", "js": "javascript", "node": "javascript",
    "typescript": "typescript", "sql": "sql", "bash": "bash", "shell": "bash", "r": "r",
}
_WANTS_CODE = re.compile(
    r"\b(?:write|implement|create|define|code|make)\s+(?:me\s+)?(?:a|an|the|some)?\s*"
    r"(?:small\s+|short\s+|simple\s+|quick\s+|tiny\s+)?(?:python\s+|javascript\s+|js\s+|typescript\s+|sql\s+|bash\s+"
    r"|shell\s+|r\s+)?(?:function|script|program|class|method|query|snippet|code|regex|one-liner)\b",
    re.IGNORECASE,
)
# (pattern, function name, python body, javascript body); {name} is the function's name
_RECIPES = (
    (r"revers\w*", "reverse_string", "text: str", "str",
     '"""Return the text with its characters in reverse order."""\n    return text[::-1]', '"notebook"',
     "return text.split('').reverse().join('');"),
    (r"palindrome", "is_palindrome", "text: str", "bool",
     '"""True if the text reads the same backwards, ignoring case and spaces."""\n'
     '    letters = [c.lower() for c in text if c.isalnum()]\n    return letters == letters[::-1]',
     '"Never odd or even"', "const s = text.toLowerCase().replace(/[^a-z0-9]/g, '');\n"
     "  return s === s.split('').reverse().join('');"),
    (r"factorial", "factorial", "n: int", "int",
     '"""n! = 1 * 2 * ... * n, for n >= 0."""\n    if n < 0:\n        raise ValueError("n must be 0 or more")\n'
     "    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result", "5",
     "let result = 1;\n  for (let k = 2; k <= n; k++) result *= k;\n  return result;"),
    (r"fibonacci", "fibonacci", "n: int", "list[int]",
     '"""The first n Fibonacci numbers."""\n    numbers = []\n    a, b = 0, 1\n    for _ in range(n):\n'
     "        numbers.append(a)\n        a, b = b, a + b\n    return numbers", "10",
     "const out = [];\n  let [a, b] = [0, 1];\n  for (let i = 0; i < n; i++) { out.push(a); [a, b] = [b, a + b]; }\n"
     "  return out;"),
    (r"primes?\b", "is_prime", "n: int", "bool",
     '"""True if n is a prime number."""\n    if n < 2:\n        return False\n'
     "    return all(n % k for k in range(2, int(n ** 0.5) + 1))", "97",
     "if (n < 2) return false;\n  for (let k = 2; k * k <= n; k++) if (n % k === 0) return false;\n  return true;"),
    (r"vowels?", "count_vowels", "text: str", "int",
     '"""How many vowels (a, e, i, o, u) the text has."""\n    return sum(1 for c in text.lower() if c in "aeiou")',
     '"Jupyter notebook"', "return (text.match(/[aeiou]/gi) || []).length;"),
    (r"count\w*\s+(?:the\s+)?words|word\s+count", "count_words", "text: str", "int",
     '"""How many words the text has."""\n    return len(text.split())', '"to be or not to be"',
     "return text.split(/\\s+/).filter(Boolean).length;"),
    (r"average|\bmean\b", "average", "values: list[float]", "float",
     '"""The arithmetic mean of the values."""\n    if not values:\n        raise ValueError("no values")\n'
     "    return sum(values) / len(values)", "[3, 4, 5]",
     "return values.reduce((a, b) => a + b, 0) / values.length;"),
    (r"\bsums?\b|\btotal\b|add\s+up", "sum_values", "values: list[float]", "float",
     '"""The sum of the values."""\n    total = 0\n    for value in values:\n        total += value\n    return total',
     "[1, 2, 3]", "return values.reduce((a, b) => a + b, 0);"),
    (r"\bmax\w*|largest|biggest", "largest", "values: list[float]", "float",
     '"""The largest of the values."""\n    return max(values)', "[3, 9, 4]", "return Math.max(...values);"),
    (r"\bmin\w*|smallest", "smallest", "values: list[float]", "float",
     '"""The smallest of the values."""\n    return min(values)', "[3, 9, 4]", "return Math.min(...values);"),
    (r"\bsort", "sort_values", "values: list", "list",
     '"""The values in ascending order (a new list)."""\n    return sorted(values)', "[3, 1, 2]",
     "return [...values].sort((a, b) => a - b);"),
    (r"fahrenheit|celsius", "celsius_to_fahrenheit", "celsius: float", "float",
     '"""Degrees Celsius in degrees Fahrenheit."""\n    return celsius * 9 / 5 + 32', "100",
     "return celsius * 9 / 5 + 32;"),
    (r"fizz\s*buzz", "fizzbuzz", "n: int", "list[str]",
     '"""FizzBuzz from 1 to n."""\n    out = []\n    for k in range(1, n + 1):\n'
     '        out.append("FizzBuzz" if k % 15 == 0 else "Fizz" if k % 3 == 0 else "Buzz" if k % 5 == 0 else str(k))\n'
     "    return out", "15",
     "return Array.from({length: n}, (_, i) => (i + 1) % 15 === 0 ? 'FizzBuzz' : (i + 1) % 3 === 0 ? 'Fizz'"
     " : (i + 1) % 5 === 0 ? 'Buzz' : String(i + 1));"),
    (r"duplicates?|unique", "unique", "values: list", "list",
     '"""The values without duplicates, in their first order."""\n    return list(dict.fromkeys(values))',
     "[1, 2, 2, 3, 1]", "return [...new Set(values)];"),
    (r"even\b", "is_even", "n: int", "bool", '"""True if n is even."""\n    return n % 2 == 0', "4",
     "return n % 2 === 0;"),
)


def _language(text: str) -> str:
    for word in re.findall(r"[A-Za-z+#]+", text):
        low = word.lower()
        if low == "r" and word != "R":
            continue
        if low in _LANGUAGES:
            return _LANGUAGES[low]
    return "python"


def _task(request: str) -> str:
    """What the code should do: the words after "that", "which" or "to", as a phrase."""
    match = re.search(r"\b(?:that|which|to|for)\s+(.+?)(?:[.?!\n]|$)", request)
    return (match.group(1) if match else request).strip()


def _snake_name(task: str) -> str:
    words = [w for w in _words_of(task) if w not in _STOPWORDS and w.isalpha()][:3]
    if words and words[0].endswith("s") and len(words[0]) > 3 and not words[0].endswith("ss"):
        words[0] = words[0][:-1]  # "reverses" -> "reverse", "cleans" -> "clean"
    return "_".join(words) or "solve"


def _code_answer(ask: _Prompt) -> str:
    """One fenced block in the language asked; Python always parses."""
    language = _language(ask.request)
    text = ask.request
    frames = _context_frames(ask.context)
    recipe = next((r for r in _RECIPES if re.search(r[0], text, re.IGNORECASE)), None)
    name = None
    if recipe is not None:
        _, name, parameters, returns, body, example, js_body = recipe
    if language == "python" and frames and (name is None or not _has_word(text, "function|def")):
        return f"```python\n{_pandas_code(ask.request, frames)}\n```"
    if language == "sql":
        table = re.search(r"\b(?:from|in|of)\s+(?:the\s+)?(\w+)\s+table\b|\btable\s+(\w+)", text, re.I)
        table_name = next((g for g in table.groups() if g), "items") if table else "items"
        return f"```sql\nSELECT *\nFROM {table_name}\nLIMIT 10;\n```"
    if language == "bash":
        return '```bash\n#!/usr/bin/env bash\nset -euo pipefail\necho "Done: ' + _task(text).replace('"', "") + '"\n```'
    if name is None:
        task = _task(text)
        name = _snake_name(task)
        parameters, returns, example = "value", "object", "None"
        body = f'"""{task[:1].upper() + task[1:].rstrip(".")}."""\n    result = value\n    return result'
        js_body = "return value;"
    if language in ("javascript", "typescript"):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        params = ", ".join(p.split(":")[0].strip() for p in parameters.split(","))
        return f"```{language}\nfunction {camel}({params}) {{\n  {js_body}\n}}\n\nconsole.log({camel}({example}));\n```"
    if language == "r":
        params = ", ".join(p.split(":")[0].strip() for p in parameters.split(","))
        return f"```r\n{name} <- function({params}) {{\n  {params.split(',')[0]}\n}}\n```"
    call = "" if example == "None" else f"\n\n\nprint({name}({example}))"
    return f"```python\ndef {name}({parameters}) -> {returns}:\n    {body}{call}\n```"


# -- context and fix ---------------------------------------------------------------------------------


class _Frame(NamedTuple):
    name: str
    rows: int
    columns: list[tuple[str, str]]  # (name, dtype)


def _context_items(context: str) -> list[tuple[str, str]]:
    """(name, one-line summary) of every object in a context section."""
    return re.findall(r"^`([^`\n]+)` — ([^\n]+)$", context, re.MULTILINE)


def _context_frames(context: str) -> list[_Frame]:
    """The DataFrames in a context section, with their columns."""
    frames = []
    for match in re.finditer(r"^`([^`\n]+)` — pandas DataFrame: ([\d,]+) rows? × [\d,]+ columns?\n(`{3,})text\n(.*?)^\3$",
                             context, re.MULTILINE | re.DOTALL):
        block = match.group(4)
        listing = re.search(r"^columns \(dtype, nulls\):\n((?:  .*\n)+)", block, re.MULTILINE)
        columns = []
        for line in (listing.group(1).splitlines() if listing else []):
            column = re.fullmatch(r"  (.+): (\S+), [\d,]+ nulls?", line)
            if column:
                columns.append((column.group(1), column.group(2)))
        frames.append(_Frame(match.group(1), int(match.group(2).replace(",", "")), columns))
    return frames


def _context_sentence(context: str) -> str:
    """What the answer says about the context it was sent."""
    parts = []
    frames = {frame.name: frame for frame in _context_frames(context)}
    for name, summary in _context_items(context):
        frame = frames.get(name)
        if frame is not None:
            columns = ", ".join(f"`{column}` ({dtype})" for column, dtype in frame.columns)
            parts.append(f"`{name}` is a DataFrame of {frame.rows:,} rows with the columns {columns}")
        elif name.startswith("cells:"):
            parts.append(f"I read {summary}")
        elif name == "error":
            parts.append(f"the last error was {summary.split(': ', 1)[-1]}")
        else:
            parts.append(f"`{name}` is {summary[:1].lower() + summary[1:]}")
    if not parts:
        return ""
    return "From the notebook context: " + "; ".join(parts) + "."


def _numeric_columns(frame: _Frame) -> list[str]:
    return [name for name, dtype in frame.columns if re.match(r"(?:int|float|uint|Int|Float)", dtype)]


def _pandas_code(request: str, frames: list[_Frame]) -> str:
    frame = frames[0]
    mentioned = [c for c, _ in frame.columns if re.search(rf"\b{re.escape(c)}\b", request, re.IGNORECASE)]
    numeric = _numeric_columns(frame)
    value = next((c for c in mentioned if c in numeric), numeric[0] if numeric else None)
    group = next((c for c in mentioned if c != value and c not in numeric), None)
    if group is None:
        group = next((c for c, dtype in frame.columns if dtype in ("object", "category", "string")), None)
    lines = ["import matplotlib.pyplot as plt", ""] if _has_word(request, r"plot|chart|graph|histogram") else []
    if value and group and _has_word(request, r"per|by|each|group\w*|average|mean|compare"):
        lines += [f'summary = {frame.name}.groupby("{group}")["{value}"].mean().sort_values()']
        if lines[0].startswith("import"):
            lines += [f'summary.plot.barh(title="Mean {value} per {group}")', "plt.show()"]
        else:
            lines += ["summary"]
    elif value and _has_word(request, r"plot|chart|graph|histogram|distribution"):
        lines += [f'{frame.name}["{value}"].plot.hist(bins=10, title="{value}")', "plt.show()"]
    else:
        lines += [f"{frame.name}.describe(include=\"all\")"]
    return "\n".join(lines)


class _Failure(NamedTuple):
    code: str
    error_type: str
    message: str
    line: int | None


def _failure(request: str) -> _Failure | None:
    """The failing cell and its error, from the prompt `%aihubmix fix` builds."""
    if _FIX_HEADING not in request:
        return None
    cell = re.search(rf"^{_CELL_LABEL}[^\n]*:\n(`{{3,}})python\n(.*?)\n\1$", request, re.MULTILINE | re.DOTALL)
    error = re.search(rf"^{_ERROR_LABEL}[^\n]*:\n(`{{3,}})text\n(.*?)\n\1$", request, re.MULTILINE | re.DOTALL)
    if not error:
        return None
    traceback_text = error.group(2)
    last = next((line for line in reversed(traceback_text.splitlines()) if re.match(r"\w[\w.]*(?::|$)", line)), "")
    error_type, _, message = last.partition(":")
    # the innermost frame in the failing cell itself (a function it calls may come from another cell)
    number = re.search(r"failed \(In \[(\d+)\]\)", request)
    frames = re.findall(r"Cell In\[(\d+)\], line (\d+)", traceback_text)
    own = [line for cell_number, line in frames if number and cell_number == number.group(1)]
    line = own[-1] if own else frames[0][1] if frames else None
    return _Failure(cell.group(2) if cell else "", error_type.strip(), message.strip(),
                    int(line) if line else None)


def _close_match(word: str, candidates: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, [c for c in candidates if c != word], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _fix_answer(failure: _Failure, ask: _Prompt) -> str:
    """Explanation (and, unless a hint or an explanation alone is asked for, the corrected cell)."""
    hint = _has_word(ask.system, "hints?")
    explain_only = re.search(r"do not (?:write|give|show) (?:the )?(?:corrected|fixed) code", ask.system, re.I)
    error = f"`{failure.error_type}: {failure.message}`" if failure.message else f"`{failure.error_type}`"
    where = f"line {failure.line}" if failure.line else "the cell"
    code_lines = failure.code.splitlines()
    failing_line = code_lines[failure.line - 1].strip() if failure.line and failure.line <= len(code_lines) else ""
    frames = _context_frames(ask.context)
    columns = [c for frame in frames for c, _ in frame.columns]
    names_in_code = sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", failure.code)))
    context_names = [name for name, _ in _context_items(ask.context)]
    wrong = right = None
    explanation = f"The cell fails at {where} with {error}."
    quoted = re.search(r"'([^']+)'", failure.message)
    if failure.error_type == "NameError" and quoted:
        wrong = quoted.group(1)
        right = _close_match(wrong, names_in_code + context_names)
        explanation += f" Python does not know the name `{wrong}`: nothing of that name is defined when that line runs."
    elif failure.error_type == "KeyError" and quoted:
        wrong = quoted.group(1)
        right = _close_match(wrong, columns)
        where_from = f" `{frames[0].name}` has the columns {', '.join(f'`{c}`' for c in columns)}." if frames else ""
        explanation += f" There is no key or column `{wrong}`.{where_from}"
    elif failure.error_type == "AttributeError" and quoted:
        attribute = re.findall(r"'([^']+)'", failure.message)[-1]
        wrong = attribute
        right = _close_match(attribute, columns + names_in_code)
        explanation += f" The object has no attribute `{attribute}`."
    elif failure.error_type in ("ModuleNotFoundError", "ImportError") and quoted:
        explanation += f" The package `{quoted.group(1)}` is not installed in this kernel's environment."
    elif failure.error_type == "ZeroDivisionError":
        explanation += " A number is divided by zero there: check that the divisor cannot be 0 (an empty list?)."
    elif failure.error_type == "TypeError":
        explanation += " An operation got a value of a type it cannot handle: check the types of the values there."
    elif failure.error_type in ("SyntaxError", "IndentationError"):
        explanation += " Python cannot read the code there: check brackets, quotes, colons and indentation."
    elif failure.error_type == "IndexError":
        explanation += " An index is past the end of a sequence: check its length first."
    right = _typo_fix(failure, ask, wrong, right)
    if right:
        explanation += f" It looks like a typo for `{right}`."
    if hint:
        look = f" Look closely at `{failing_line}`." if failing_line else ""
        if wrong:
            look += f" Which names does the cell define, and how is `{wrong}` spelt there?"
        return f"**Hint:** the error is {error}.{look} Read the last line of the traceback again, then try once more."
    if explain_only:
        fix = f" Change `{wrong}` to `{right}` and run the cell again." if right else ""
        return explanation + fix
    if right and wrong:
        fixed = re.sub(rf"(?<![\w.]){re.escape(wrong)}(?!\w)" if failure.error_type == "NameError"
                       else rf"(?<=[.'\"]){re.escape(wrong)}(?=['\"]|\b)", right, failure.code)
        change = f"Here is the cell with `{wrong}` changed to `{right}`:"
    elif failure.error_type in ("ModuleNotFoundError", "ImportError") and quoted:
        fixed = f"%pip install {quoted.group(1).split('.')[0]}\n{failure.code}"
        change = "Install it first, then run the cell again:"
    elif repaired := _repaired_cell(failure):
        fixed, change = repaired
    else:
        fixed_lines = list(code_lines)
        if failure.line and failure.line <= len(fixed_lines):
            fixed_lines[failure.line - 1] += f"  # <- {failure.error_type} here"
        fixed = "\n".join(fixed_lines)
        change = "Here is the cell with the line to change marked; fix it as described above:"
    fence = "```" if "```" not in fixed else "~~~~"
    return f"{explanation}\n\n{change}\n\n{fence}python\n{fixed}\n{fence}"


# a fix that runs: the demo's corrected cell must not fail again for the common errors (a division by
# zero, a misspelt name / key / attribute, an index out of range, a string added to a number, a standard
# module used without its import); each repair changes only the failing line, or adds the import on top
_MODULE_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "sns": "seaborn"}


def _missing_import(failure: _Failure) -> str | None:
    """`import math` for "name 'math' is not defined" (a standard module, or a usual alias), else None."""
    named = re.search(r"name '([A-Za-z_]\w*)' is not defined", failure.message)
    if failure.error_type != "NameError" or not named:
        return None
    name = named.group(1)
    if name in sys.stdlib_module_names and not name.startswith("_"):
        return f"import {name}"
    return f"import {_MODULE_ALIASES[name]} as {name}" if name in _MODULE_ALIASES else None


def _typo_fix(failure: _Failure, ask: _Prompt, wrong: str | None, right: str | None) -> str | None:
    """The existing name for a misspelt one: Python's own "Did you mean", else the closest among the
    builtins (a name), the attributes of a builtin type or a standard module (an attribute), or the strings
    of the cell and its context (a key). None for a module used without its import."""
    if wrong is None or _missing_import(failure):
        return None
    suggested = re.search(r"Did you mean:? '([^']+)'", failure.message)
    if right or suggested:
        return right or (suggested.group(1) if suggested else None)
    import builtins

    candidates: list[str] = []
    if failure.error_type == "NameError":
        candidates = dir(builtins)
    elif failure.error_type == "AttributeError":
        owner = re.match(r"'(\w+)' object has no attribute", failure.message)
        module = re.match(r"module '([\w.]+)' has no attribute", failure.message)
        if owner and isinstance(getattr(builtins, owner.group(1), None), type):
            candidates = dir(getattr(builtins, owner.group(1)))
        elif module and module.group(1).split(".")[0] in sys.stdlib_module_names:
            import importlib

            try:
                candidates = dir(importlib.import_module(module.group(1)))
            except Exception:  # a standard module this platform lacks
                candidates = []
    elif failure.error_type == "KeyError":
        text = failure.code + "\n" + ask.context
        candidates = [a or b for a, b in re.findall(r"'([^'\n]{1,60})'|\"([^\"\n]{1,60})\"", text)]
    return _close_match(wrong, [c for c in dict.fromkeys(candidates) if not c.startswith("_")])


def _repaired_cell(failure: _Failure) -> tuple[str, str] | None:
    """(the corrected cell, the sentence that introduces it) for an error whose repair is mechanical, or
    None. Only the failing line changes (its source is edited where the parsed nodes stand)."""
    imported = _missing_import(failure)
    if imported:
        return f"{imported}\n{failure.code}", f"Here is the cell with `{imported}` added at the top:"
    import ast

    lines = failure.code.splitlines()
    if not failure.line or failure.line > len(lines):
        return None
    try:
        tree = ast.parse(failure.code)
    except SyntaxError:
        return None
    number, line = failure.line, lines[failure.line - 1].encode()  # ast's columns count UTF-8 bytes

    def on_line(node: ast.AST) -> bool:
        return getattr(node, "lineno", None) == number and getattr(node, "end_lineno", None) == number

    def source(node: ast.expr) -> str:
        return line[node.col_offset:node.end_col_offset].decode()

    def is_text(node: ast.expr) -> bool:
        return isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str)

    edits: list[tuple[ast.expr, str]] = []  # (node, its replacement)
    nodes = [node for node in ast.walk(tree) if on_line(node)]
    if failure.error_type == "ZeroDivisionError":
        for node in nodes:
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and not (
                    isinstance(node.right, ast.Constant) and node.right.value):
                edits.append((node, f"({source(node)} if {source(node.right)} else 0)"))
        change = "Here is the cell with the division guarded (0 where the divisor is 0):"
    elif failure.error_type == "IndexError":
        for node in nodes:
            if not isinstance(node, ast.Subscript) or isinstance(node.slice, (ast.Slice, ast.Tuple)):
                continue
            sized = node.value.value if isinstance(node.value, ast.Attribute) and node.value.attr in (
                "iloc", "iat") else node.value
            index, length = source(node.slice), f"len({source(sized)})"
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                edits.append((node, f"{source(node.value)}[-1]"))
            else:
                edits.append((node, f"({source(node)} if -{length} <= {index} < {length} else None)"))
        change = "Here is the cell reading only indexes that exist (the last item, or None past the end):"
    elif failure.error_type == "TypeError" and re.search(r"concatenate str|operand type\(s\) for \+=?:", failure.message):
        number_first = "operand type(s)" in failure.message  # 'int' + 'str', not 'str' + 'int'
        for node in nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
                if number_first and isinstance(node.value, ast.Constant) and str(node.value.value).strip().isdigit():
                    edits.append((node.value, str(int(str(node.value.value)))))
                elif number_first:
                    edits.append((node.value, f"float({source(node.value)})"))
                else:
                    edits.append((node.value, f"str({source(node.value)})"))
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
                  and is_text(node.left) != is_text(node.right)):
                text, other = (node.left, node.right) if is_text(node.left) else (node.right, node.left)
                if isinstance(text, ast.Constant) and str(text.value).strip().isdigit():
                    edits.append((text, str(int(str(text.value)))))  # "5" meant as the number 5
                else:
                    edits.append((other, f"str({source(other)})"))
        if not edits:  # two names: the number becomes text, so the line runs
            for node in nodes:
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                    edits.append((node.left if number_first else node.right,
                                  f"str({source(node.left if number_first else node.right)})"))
                    break
        change = "Here is the cell with the text and the number made the same type:"
    if not edits:
        return None
    kept: list[tuple[int, int, str]] = []  # innermost first; an edit around another one is dropped
    for node, replacement in sorted(edits, key=lambda edit: (edit[0].end_col_offset or 0) - edit[0].col_offset):
        start, end = node.col_offset, node.end_col_offset or node.col_offset
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, replacement))
    for start, end, replacement in sorted(kept, reverse=True):
        line = line[:start] + replacement.encode() + line[end:]
    lines[number - 1] = line.decode()
    return "\n".join(lines), change


# -- the answer --------------------------------------------------------------------------------------


def _shaped_text(rng: random.Random, shape: _Shape, ask: _Prompt) -> list[str] | None:
    """Paragraphs for a prompt that asks for a length (sentences, paragraphs, words), or None."""
    if shape.max_words and ask.judged and _has_word(ask.instruction, _SUMMARY):
        words = _sentence_split(ask.judged)[0].rstrip(".!?;").split()[: shape.max_words]
        return [" ".join(words) + "."]
    if _has_word(ask.instruction, _SUMMARY) and ask.judged:
        count = shape.sentences or 1
        return [" ".join(_sentence_split(ask.judged)[:count])]
    if shape.max_words:
        words = rng.choices(_VOCABULARY, k=max(1, min(shape.max_words, 12)))
        sentence = " ".join(words)
        return [sentence[:1].upper() + sentence[1:] + "."]
    if shape.sentences:
        return [" ".join(_filler(rng, rng.randint(6, 11)) for _ in range(min(shape.sentences, 20)))]
    if shape.paragraphs:
        return [_filler(rng, rng.randint(25, 45)) for _ in range(min(shape.paragraphs, 10))]
    return None


def _choice_answer(options: list[str], shape: _Shape, ask: _Prompt) -> str:
    chosen = _case_like(_choose(options, ask.judged, ask.instruction), options)
    if shape.one_word and not _has_word(ask.request, r"reason|why|explain|because|justify"):
        return chosen
    reason = "" if chosen.lower() in ("yes", "no", "true", "false", "maybe") else _reason(chosen, ask.judged)
    return f"{chosen[:1].upper() + chosen[1:]} — {reason}" if reason else chosen


@functools.lru_cache(maxsize=8)  # long answers take tens of MB
def _answer_tokens(
    model: str, prompt: str, images: int, json_mode: bool, schema_text: str | None, unicode_sample: bool,
    system: str = "",
) -> tuple[str, ...]:
    """The tokens of the answer; the same arguments always give the same answer."""
    rng = random.Random(zlib.crc32(f"{model}\n{prompt}".encode()))
    lead_sentences = [f"I see {images} image(s)."] if images else []
    if unicode_sample:
        lead_sentences.append(_UNICODE_SAMPLE)
    lead = " ".join(lead_sentences)
    ask = _parse_prompt(prompt, system)
    failure = _failure(ask.request)
    if failure is not None:
        return tuple(_tokenize(_fix_answer(failure, ask)))
    if json_mode or schema_text is not None or _has_word(ask.request, "json"):
        schema = json.loads(schema_text) if schema_text is not None else None
        return tuple(_tokenize(_json_answer(rng, model, lead, schema, ask)))
    if _WANTS_CODE.search(ask.request) or re.search(r"fenced code block", system, re.IGNORECASE):
        return tuple(_tokenize(_code_answer(ask)))
    shape = _shape(ask.request + "\n" + system)
    options = _options(ask.instruction)
    if options and not lead:
        return tuple(_tokenize(_choice_answer(options, shape, ask)))
    if shape.one_word and not lead:
        return tuple(_tokenize(rng.choice(_VOCABULARY).capitalize()))

    blocks = [f"*Simulated answer from {model}.*"]
    if _has_word(ask.request, "headings?"):
        blocks.insert(0, "## " + " ".join(rng.choices(_VOCABULARY, k=3)).title())
    if ask.context and (sentence := _context_sentence(ask.context)):
        blocks.append(sentence)
    words = re.search(r"\bwords=(\d+)", ask.request, re.IGNORECASE)
    shaped = _shaped_text(rng, shape, ask)
    if words:
        paragraphs = [lead] if lead else []
        remaining = min(int(words.group(1)), _MAX_WORDS)
        while remaining > 0:
            size = min(remaining, rng.randint(40, 80))
            paragraphs.append(_filler(rng, size))
            remaining -= size
    elif shaped is not None:
        paragraphs = ([lead] if lead else []) + shaped
    elif shape.bullets:
        paragraphs = [lead] if lead else []
    else:
        opening = f'You asked: "{_quote(ask.request)}".' if ask.request.strip() else "You asked nothing in particular."
        first = " ".join(part for part in (opening, lead) if part)
        paragraphs = [first + " " + _filler(rng, rng.randint(25, 45) - len(first.split()))]
        if rng.random() < 0.5:
            paragraphs.append(_filler(rng, rng.randint(25, 45)))
    blocks += paragraphs + _markdown_blocks(rng, ask.request, shape)
    return tuple(_tokenize("\n\n".join(blocks)))


def _markdown_blocks(rng: random.Random, prompt: str, shape: _Shape) -> list[str]:
    """The extra blocks that directives in the prompt ask for."""
    blocks = []
    if _has_word(prompt, "bold"):
        blocks.append(f"This sentence has **bold text** about the {' '.join(rng.choices(_VOCABULARY, k=2))}.")
    if shape.bullets is not None:
        count = min(shape.bullets or 3, 50)
        blocks.append("\n".join(f"- {_filler(rng, rng.randint(3, 6))}" for _ in range(count)))
    if _has_word(prompt, "tables?"):
        rows = [f"| {rng.choice(_VOCABULARY)} | {rng.randint(1, 99)} |" for _ in range(3)]
        blocks.append("\n".join(["| Name | Value |", "| --- | --- |", *rows]))
    if _has_word(prompt, "code"):
        name = rng.choice(_VOCABULARY)
        blocks.append(
            f"```python\ndef {name}_total(values):\n    total = sum(values)\n"
            f"    return total * {rng.randint(2, 9)}\n```"
        )
    return blocks


def _reasoning_tokens(model: str, prompt: str) -> tuple[str, ...]:
    """A short thinking text of 12 to 18 tokens."""
    rng = random.Random(zlib.crc32(f"reasoning\n{model}\n{prompt}".encode()))
    topic = " ".join(prompt.split()[:5]) or "the question"
    words = f'Let me think about "{topic}" step by step,'.split()
    extra = rng.choices(_VOCABULARY, k=max(0, rng.randint(12, 18) - len(words) - 1))
    return tuple(_tokenize(" ".join([*words, *extra, "done."])))


# --- reading a request -----------------------------------------------------------------------------


class _Input(NamedTuple):
    """What the answer is made from: the prompt, the size of all input text and the image count."""

    prompt: str
    words: int
    images: int
    has_tool_result: bool
    system: str = ""  # the system / developer messages and the instructions, joined
    tool_results: tuple[str, ...] = ()  # the tool results that end the conversation (the model's turn now)


def _content_text(content: Any) -> tuple[str, int]:
    """The text of a message's content (a string or a list of parts) and its image count."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("image_url", "input_image"):
            images += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts), images


def _read_input(endpoint: str, body: dict) -> _Input:
    if endpoint == "chat":
        items = body.get("messages")
        extra_text = ""
    else:
        items = body.get("input")
        extra_text = str(body.get("instructions")) if isinstance(body.get("instructions"), str) else ""
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
    prompt, words, images, has_tool_result = "", len(extra_text.split()), 0, False
    system = [extra_text] if extra_text else []
    results: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "tool" or item.get("type") == "function_call_output":
            has_tool_result = True
            output = item.get("content", item.get("output"))
            results.append(output if isinstance(output, str) else json.dumps(output))
        elif item.get("type") != "function_call" and item.get("role") != "assistant":
            results = []
        text, count = _content_text(item.get("content", item.get("output")))
        words += len(text.split())
        images += count
        if item.get("role") == "user":
            prompt = text
        elif item.get("role") in ("system", "developer"):
            system.append(text)
    return _Input(prompt, max(1, words), images, has_tool_result, "\n\n".join(system), tuple(results))


def _offered_functions(endpoint: str, body: dict) -> list[tuple[str, dict]]:
    """The functions a request offers: (name, parameters schema), in order."""
    functions = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        inner = tool.get("function")
        spec: dict = inner if isinstance(inner, dict) else tool
        if isinstance(spec.get("name"), str):
            functions.append((spec["name"], _dict(spec.get("parameters"))))
    return functions


def _function_description(body: dict, name: str) -> str:
    """The description (the docstring's summary) of the function `name` that a request offers."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        spec = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if isinstance(spec, dict) and spec.get("name") == name and isinstance(spec.get("description"), str):
            return spec["description"]
    return ""


def _named_values(text: str, parameter: str | None = None) -> list[str]:
    """The values a description names for a parameter: quoted ('fruit' or 'vegetable'), or a bare list
    that is the whole description ("fruit, vegetable or herb."). With `parameter`, only the sentences that
    mention it count (a function's description speaks of all its parameters)."""
    if parameter is not None:
        sentences = [s for s in _sentence_split(text) if re.search(rf"\b{re.escape(parameter)}\b", s, re.I)]
        text = " ".join(sentences)
    pattern = r"(?<![\w'])'([^'\n]{1,40})'(?!\w)|\"([^\"\n]{1,40})\"|`([^`\n]{1,40})`"  # not "today's"
    quoted = list(dict.fromkeys(a or b or c for a, b, c in re.findall(pattern, text)))
    if len(quoted) >= 2:
        return quoted
    if parameter is None:
        bare = re.sub(r"(?i)^\s*(?:one of|either)\s*:?\s*", "", text).strip().rstrip(".")
        parts = [part.strip() for part in re.split(r",|/|\bor\b", bare) if part.strip()]
        if len(parts) >= 2 and all(re.fullmatch(r"[\w-]+", part) for part in parts):
            return parts
    return []


def _with_named_values(schema: dict, description: str) -> dict:
    """`schema` with an enum for each text parameter whose values the docstring names (its own line under
    Args:, or the function's description), so a demo call uses them rather than a made-up value; a schema's
    own enum (Literal, Enum) stays first."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    named = {}
    for name, spec in properties.items():
        if not isinstance(spec, dict) or spec.get("enum") or spec.get("type", "string") != "string":
            continue
        values = _named_values(str(spec.get("description", ""))) or _named_values(description, name)
        if values:
            named[name] = {**spec, "enum": values}
    return {**schema, "properties": {**properties, **named}} if named else schema


def _wants_web_search(endpoint: str, body: dict) -> bool:
    if endpoint == "chat":
        return isinstance(body.get("web_search_options"), dict)
    tools = body.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("type") in ("web_search", "web_search_preview") for t in tools)


_OTHER_VALUES = {"Paris": "London", "London": "Paris"}


def _other_value(value: Any) -> Any:
    """A second, different value of the same type (for a second call of the same tool)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return _OTHER_VALUES.get(value, value + " 2")
    if isinstance(value, dict):
        return {key: _other_value(item) for key, item in value.items()}
    return value


def _argument_pieces(arguments: dict) -> tuple[str, ...]:
    """The arguments' JSON in pieces of 5 characters: keys, strings and numbers are split across chunks."""
    text = json.dumps(arguments, ensure_ascii=False)
    return tuple(text[i : i + 5] for i in range(0, len(text), 5)) or ("{}",)


def _tool_calls(fault: str, model: str, endpoint: str, body: dict, source: _Input) -> tuple[_Call, ...]:
    """The calls this answer makes (none: it answers in text)."""
    if fault == "tools":  # the fixed call of the original tool model
        return () if source.has_tool_result else (_Call("call_sim1", "get_weather", _TOOL_ARGUMENT_PIECES),)
    offered = _offered_functions(endpoint, body)
    if not offered or (fault not in ("", "tool-call", "parallel-tools", "tools-forever", "echo")
                       and fault not in _TIMING_FAULTS):
        return ()
    if source.tool_results and fault != "tools-forever":
        return ()  # the results are in: answer with them
    ask = _parse_prompt(source.prompt, source.system)
    rng = random.Random(zlib.crc32(f"{model}\n{source.prompt}".encode()))

    def arguments(schema: dict) -> dict:
        value = _json_value(rng, {"type": "object", **schema}, ask, "arguments")
        return value if isinstance(value, dict) else {}

    prefix = uuid.uuid4().hex[:8]
    chosen = offered[:1]
    if fault == "parallel-tools":
        chosen = offered if len(offered) > 1 else offered * 2
    calls: list[_Call] = []
    seen: dict[str, dict] = {}
    for number, (name, schema) in enumerate(chosen):
        values = arguments(_with_named_values(schema, _function_description(body, name)))
        if name in seen:
            values = _other_value(seen[name])
        seen[name] = values
        calls.append(_Call(f"call_{prefix}{number}", name, _argument_pieces(values)))
    return tuple(calls)


_TIMING_FAULTS = ("slow", "tps", "latency")


def _tool_answer(model: str, results: tuple[str, ...]) -> tuple[str, ...]:
    """The answer once the tool results are in: it says what they were."""
    several = any("\n" in result for result in results)  # a table: each result a paragraph of its own
    head = "The tool returned:" if len(results) == 1 else "The tools returned:"
    said = head + ("".join(f"\n\n{result}" for result in results) if several else " " + "; ".join(results))
    return tuple(_tokenize(f"*Simulated answer from {model}.* {said}"))


def _sources(prompt: str) -> tuple[str, tuple[dict, ...]]:
    """The sentence a web-search answer ends with, and its two url_citation annotations (flat form)."""
    slug = "-".join(_words_of(prompt)[:4]) or "search"
    sources = ((f"https://example.org/articles/{slug}", f"Example article on {slug.replace('-', ' ')}"),
               (f"https://example.com/{slug}/facts", "Example facts page"))
    sentence, annotations = " Sources:", []
    for number, (url, title) in enumerate(sources, start=1):
        label = f" [{number}]"
        start = len(sentence) + 1
        sentence += label
        annotations.append({"type": "url_citation", "url": url, "title": title, "start_index": start,
                            "end_index": start + len(label) - 1})
    return sentence + ".", tuple(annotations)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _json_format(endpoint: str, body: dict) -> tuple[bool, str | None]:
    """Whether JSON output was asked for, and the canonical text of the JSON schema if one was given."""
    if endpoint == "chat":  # chat nests the schema: response_format.json_schema.schema
        fmt = _dict(body.get("response_format"))
        schema = _dict(fmt.get("json_schema")).get("schema")
    else:  # responses: text.format.schema
        fmt = _dict(_dict(body.get("text")).get("format"))
        schema = fmt.get("schema")
    kind = fmt.get("type")
    if kind == "json_schema" and isinstance(schema, dict):
        return True, json.dumps(schema, sort_keys=True)
    return kind in ("json_object", "json_schema"), None


def _wants_reasoning(endpoint: str, body: dict, model: str) -> bool:
    reasoning = _dict(body.get("reasoning"))
    effort = body.get("reasoning_effort") if endpoint == "chat" else None
    effort = effort if effort is not None else reasoning.get("effort")
    if effort is not None:
        return effort != "none"
    if isinstance(reasoning.get("max_tokens"), int):
        return reasoning["max_tokens"] > 0
    return model.endswith("-think") or model in _REASONING_MODELS


def _max_tokens(endpoint: str, body: dict, fault: _Fault) -> int | None:
    """The output token limit: the request's, or 4 for ``sim-incomplete``."""
    if endpoint == "chat":
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
    else:
        limit = body.get("max_output_tokens")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    if fault.name == "incomplete":
        return 4 if limit is None else min(4, limit)
    return limit


class _Fault(NamedTuple):
    """The fault a model name asks for: ``name`` is the name after ``sim-`` without its number."""

    name: str
    number: int

    @classmethod
    def parse(cls, model: str) -> _Fault:
        if not model.startswith("sim-"):
            return cls("", 0)
        numbered = re.fullmatch(r"sim-(.+)-(\d+)", model)
        if numbered and numbered.group(1) in _DEFAULT_NUMBERS:
            return cls(numbered.group(1), int(numbered.group(2)))
        name = model[len("sim-") :]
        return cls(name, _DEFAULT_NUMBERS.get(name, 0))

    @property
    def token_delay(self) -> float | None:
        if self.name == "slow":
            return 0.2
        if self.name == "tps":
            return 1 / self.number if self.number else 0.0
        return None


class _Call(NamedTuple):
    """A function call an answer makes: its id, the function's name and the arguments' JSON in pieces."""

    id: str
    name: str
    pieces: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class _Reply:
    """A successful answer, before it is written as JSON or as a stream."""

    endpoint: str  # "chat" or "responses"
    model: str
    fault: str
    reasoning: tuple[str, ...]
    tokens: tuple[str, ...]  # the answer tokens that are sent
    calls: tuple[_Call, ...]  # the function calls made instead of a text answer
    truncated: bool
    ending: str  # "complete", "error", "failed", "drop" or "stall"
    input_tokens: int
    include_usage: bool
    echo: dict  # the request fields that a response object repeats
    annotations: tuple[dict, ...] = ()  # url_citation annotations (flat, responses-style) of a web search
    ident: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def build(cls, endpoint: str, body: dict, fault: _Fault) -> _Reply:
        model = body["model"]
        source = _read_input(endpoint, body)
        json_mode, schema_text = _json_format(endpoint, body)
        reasoning = _reasoning_tokens(model, source.prompt) if _wants_reasoning(endpoint, body, model) else ()
        calls = _tool_calls(fault.name, model, endpoint, body, source)
        tool_call = bool(calls)
        annotations: tuple[dict, ...] = ()
        tokens: tuple[str, ...] = ()
        if tool_call:
            pass
        elif source.tool_results and fault.name != "tools":
            tokens = _tool_answer(model, source.tool_results)
        else:
            json_mode = json_mode or _has_word(source.prompt, "json")
            tokens = _answer_tokens(
                model, source.prompt, source.images, json_mode, schema_text, fault.name == "chunked-utf8",
                source.system,
            )
        if not tool_call and _wants_web_search(endpoint, body):
            sentence, annotations = _sources(source.prompt)
            offset = len("".join(tokens))
            annotations = tuple({**a, "start_index": a["start_index"] + offset, "end_index": a["end_index"] + offset}
                                for a in annotations)
            tokens = (*tokens, *_tokenize(sentence))
        ending = _ENDINGS.get(fault.name, "complete")
        limit = _max_tokens(endpoint, body, fault)
        truncated = False
        if ending != "complete":
            tokens = tokens[: 3 if ending in ("error", "failed") else fault.number]
        elif limit is not None and limit < len(tokens) and not tool_call:
            tokens, truncated = tokens[: max(0, limit)], True
        return cls(
            endpoint=endpoint,
            model=model,
            fault=fault.name,
            reasoning=reasoning,
            tokens=tokens,
            calls=calls,
            truncated=truncated,
            ending=ending,
            input_tokens=source.words,
            include_usage=bool(_dict(body.get("stream_options")).get("include_usage")),
            echo={
                name: default if body.get(name) is None else body[name] for name, default in _ECHOED.items()
            },
            annotations=annotations if not truncated and ending == "complete" else (),
        )

    @property
    def tool_call(self) -> bool:
        return bool(self.calls)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.tokens) + sum(len(call.pieces) for call in self.calls)


# --- JSON bodies -----------------------------------------------------------------------------------


def _trace_id() -> str:
    """A trace id shaped like AiHubMix's: a timestamp and 17 more digits."""
    return time.strftime("%Y%m%d%H%M%S") + "".join(random.choices("0123456789", k=17))


def _aihubmix_error(message: str, **extra: str) -> dict:
    return {"error": {"message": message, "type": "Aihubmix_api_error", **extra}}


def _invalid_token_error() -> dict:
    return _aihubmix_error(f"Invalid token (request id: sim-{_trace_id()})")


def _openai_error(message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _upstream_error(message: str) -> dict:
    return {"error": {"message": f"{message} (tid: {_trace_id()})", "type": "upstream_error"}}


def _incorrect_model_error() -> dict:
    return _aihubmix_error(
        "Incorrect model ID. Please request to view the model page or you do not have permission to use "
        f"this model  (tid: {_trace_id()})"
    )


def _cached_tokens(reply: _Reply) -> int:
    """``sim-cached`` reports half of its input tokens as read from the provider's prompt cache."""
    return reply.input_tokens // 2 if reply.fault == "cached" else 0


def _chat_usage(reply: _Reply) -> dict:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": _cached_tokens(reply), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": len(reply.reasoning),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(reply: _Reply) -> dict:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": _cached_tokens(reply)},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(reply.reasoning)},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _finish_reason(reply: _Reply) -> str:
    return "tool_calls" if reply.tool_call else "length" if reply.truncated else "stop"


def _chat_completion(reply: _Reply) -> dict:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "tool_calls": None,
    }
    if reply.tool_call:
        message["content"] = None
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.calls
        ]
    if reply.annotations:
        message["annotations"] = [_chat_annotation(a) for a in reply.annotations]
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    return {
        "id": f"chatcmpl-sim{reply.ident}",
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}
        ],
        "usage": _chat_usage(reply),
    }


def _chat_annotation(annotation: dict) -> dict:
    """A flat url_citation annotation in chat's nested shape."""
    return {"type": "url_citation", "url_citation": {k: v for k, v in annotation.items() if k != "type"}}


def _web_search_item(reply: _Reply, status: str) -> dict:
    return {"id": f"ws_sim{reply.ident}", "type": "web_search_call", "status": status,
            "action": {"type": "search", "query": "simulated search"}}


def _reasoning_item(reply: _Reply, text: str) -> dict:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": f"rs_sim{reply.ident}", "type": "reasoning", "summary": summary, "encrypted_content": None}


def _message_item(reply: _Reply, status: str, text: str | None) -> dict:
    annotations = list(reply.annotations) if status == "completed" else []
    content = (
        [] if text is None else [{"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}]
    )
    return {
        "id": f"msg_sim{reply.ident}",
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _function_call_item(reply: _Reply, call: _Call, status: str, arguments: str) -> dict:
    return {
        "id": f"fc_sim{reply.ident}" + ("" if call.id == "call_sim1" else call.id[-1]),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call.id,
        "name": call.name,
    }


def _final_output(reply: _Reply) -> list[dict]:
    output = [_reasoning_item(reply, "".join(reply.reasoning))] if reply.reasoning else []
    if reply.annotations:
        output.append(_web_search_item(reply, "completed"))
    if reply.tool_call:
        output += [_function_call_item(reply, call, "completed", call.arguments) for call in reply.calls]
    else:
        output.append(_message_item(reply, "incomplete" if reply.truncated else "completed", reply.text))
    return output


def _response_object(reply: _Reply, status: str, output: list | None, usage: dict | None) -> dict:
    error = {"code": "server_error", "message": "The model failed"} if status == "failed" else None
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": f"resp_sim{reply.ident}",
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": reply.model,
        "output": output,
        "usage": usage,
        **reply.echo,
    }


def _final_status(reply: _Reply) -> str:
    return "failed" if reply.ending == "failed" else "incomplete" if reply.truncated else "completed"


def _response_json(reply: _Reply) -> dict:
    status = _final_status(reply)
    return _response_object(
        reply, status, [] if status == "failed" else _final_output(reply), _responses_usage(reply)
    )


# --- streams ---------------------------------------------------------------------------------------


class _Event(NamedTuple):
    """One server-sent event: its type (for the ``event:`` line), its data, and whether it is a token."""

    type: str | None
    data: dict | str
    is_token: bool = False


_UNKNOWN_FIELDS = {"obfuscation": "x7Qp2", "sim_future_field": {"level": 1}}
_SLOTS = ("\0slot0\0", "\0slot1\0")


class _Template:
    """The JSON text of a payload with slots (``_SLOTS``) to fill, so a token costs one small encode."""

    def __init__(self, payload: dict) -> None:
        self._parts = re.split(r'"\\u0000slot\d\\u0000"', _encode_json(payload))

    def fill(self, *values: Any) -> str:
        pieces = [self._parts[0]]
        for value, part in zip(values, self._parts[1:], strict=True):
            pieces += (_encode_json(value), part)
        return "".join(pieces)


def _iter_chat_events(reply: _Reply) -> Iterator[_Event]:
    base = {
        "id": f"chatcmpl-sim{reply.ident}",
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
    }
    extra = _UNKNOWN_FIELDS if reply.fault == "unknown-events" else {}

    def chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], "usage": usage, **extra}

    yield _Event(None, chunk({"role": "assistant", "content": "", "refusal": None}))
    reasoning = _Template(chunk({"reasoning_content": _SLOTS[0]}))
    for token in reply.reasoning:
        yield _Event(None, reasoning.fill(token), True)
    if reply.tool_call:
        for index, tool_call in enumerate(reply.calls):
            call = {
                "index": index,
                "id": tool_call.id,
                "type": "function",
                "function": {"name": tool_call.name, "arguments": ""},
            }
            yield _Event(None, chunk({"tool_calls": [call]}))
            arguments = _Template(chunk({"tool_calls": [{"index": index, "function": {"arguments": _SLOTS[0]}}]}))
            for piece in tool_call.pieces:
                yield _Event(None, arguments.fill(piece), True)
    else:
        content = _Template(chunk({"content": _SLOTS[0]}))
        for token in reply.tokens:
            yield _Event(None, content.fill(token), True)
        if reply.annotations:
            yield _Event(None, chunk({"annotations": [_chat_annotation(a) for a in reply.annotations]}))
    if reply.ending in ("error", "failed"):
        yield _Event(None, _upstream_error("upstream stream error"))
        return
    if reply.ending in ("drop", "stall"):
        return
    usage = _chat_usage(reply)
    in_finish = reply.fault == "usage-in-finish"
    yield _Event(None, chunk({}, _finish_reason(reply), usage if in_finish else None))
    if reply.include_usage and reply.fault not in ("no-usage", "usage-in-finish"):
        yield _Event(None, {**base, "choices": [], "usage": usage, **extra})
    if reply.fault != "no-done":
        yield _Event(None, "[DONE]")


class _ResponsesEvents:
    """The events of a streamed ``/v1/responses`` answer, with sequence numbers from 0."""

    def __init__(self, reply: _Reply) -> None:
        self._reply = reply
        self._sequence = itertools.count()
        self._extra = _UNKNOWN_FIELDS if reply.fault == "unknown-events" else {}

    def __iter__(self) -> Iterator[_Event]:
        reply = self._reply
        yield self._event("response.created", response=_response_object(reply, "in_progress", [], None))
        yield self._event("response.in_progress", response=_response_object(reply, "in_progress", [], None))
        if self._extra:
            yield self._event("response.future_thing", note="an event type that clients do not know yet")
        if reply.reasoning:
            yield from self._reasoning(0)
        index = 1 if reply.reasoning else 0
        if reply.annotations:
            yield from self._web_search(index)
            index += 1
        if reply.tool_call:
            for number, call in enumerate(reply.calls):
                yield from self._function_call(index + number, call)
        else:
            yield from self._message(index)
        if reply.ending in ("error", "drop", "stall"):
            return
        if self._extra:
            yield self._event("response.sim_metrics.updated", tokens=reply.output_tokens)
        status = _final_status(reply)
        output = [] if status == "failed" or reply.fault == "empty-output" else _final_output(reply)
        response = _response_object(reply, status, output, _responses_usage(reply))
        yield self._event(f"response.{status}", response=response)
        if reply.fault == "with-done":
            yield _Event(None, "[DONE]")

    def _event(self, kind: str, **fields: Any) -> _Event:
        return _Event(kind, {"type": kind, "sequence_number": next(self._sequence), **fields, **self._extra})

    def _deltas(self, kind: str, tokens: tuple[str, ...], **fields: Any) -> Iterator[_Event]:
        payload = {"type": kind, "sequence_number": _SLOTS[0], **fields, "delta": _SLOTS[1], **self._extra}
        template = _Template(payload)
        for token in tokens:
            yield _Event(kind, template.fill(next(self._sequence), token), True)

    def _reasoning(self, index: int) -> Iterator[_Event]:
        reply = self._reply
        text = "".join(reply.reasoning)
        item = _reasoning_item(reply, "")
        ids = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield self._event(
            "response.reasoning_summary_part.added", **ids, part={"type": "summary_text", "text": ""}
        )
        yield from self._deltas("response.reasoning_summary_text.delta", reply.reasoning, **ids)
        yield self._event("response.reasoning_summary_text.done", **ids, text=text)
        yield self._event(
            "response.reasoning_summary_part.done", **ids, part={"type": "summary_text", "text": text}
        )
        yield self._event("response.output_item.done", output_index=index, item=_reasoning_item(reply, text))

    def _web_search(self, index: int) -> Iterator[_Event]:
        reply = self._reply
        item = _web_search_item(reply, "in_progress")
        ids = {"item_id": item["id"], "output_index": index}
        yield self._event("response.output_item.added", output_index=index, item=item)
        for stage in ("in_progress", "searching", "completed"):
            yield self._event(f"response.web_search_call.{stage}", **ids)
        yield self._event("response.output_item.done", output_index=index, item=_web_search_item(reply, "completed"))

    def _function_call(self, index: int, call: _Call) -> Iterator[_Event]:
        reply = self._reply
        item = _function_call_item(reply, call, "in_progress", "")
        ids = {"item_id": item["id"], "output_index": index}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield from self._deltas("response.function_call_arguments.delta", call.pieces, **ids)
        yield self._event(
            "response.function_call_arguments.done", **ids, name=call.name, arguments=call.arguments
        )
        item = _function_call_item(reply, call, "completed", call.arguments)
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _message(self, index: int) -> Iterator[_Event]:
        """The message item; it stops after the deltas when the stream breaks or the answer fails."""
        reply = self._reply
        item = _message_item(reply, "in_progress", None)
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield self._event("response.content_part.added", **ids, part=empty_part)
        yield from self._deltas("response.output_text.delta", reply.tokens, **ids, logprobs=[])
        if reply.ending == "error":
            yield self._error_event()
        if reply.ending != "complete":
            return
        for number, annotation in enumerate(reply.annotations):
            yield self._event("response.output_text.annotation.added", **ids, annotation_index=number,
                              annotation=annotation)
        item = _message_item(reply, "incomplete" if reply.truncated else "completed", reply.text)
        yield self._event("response.output_text.done", **ids, text=reply.text, logprobs=[])
        yield self._event("response.content_part.done", **ids, part=item["content"][0])
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _error_event(self) -> _Event:
        """The mid-stream error: nested as live OpenAI sends it, or flat as documented."""
        error = {"code": "server_error", "message": "upstream stream error", "param": None}
        if self._reply.fault == "error-event-flat":
            return self._event("error", **error)
        return self._event("error", error={"type": "server_error", **error})


class _Framing:
    """How events become bytes on the wire: the normal framing, or the variant that a fault asks for."""

    def __init__(self, fault: str = "") -> None:
        self.line_end = {"crlf": "\r\n", "cr": "\r"}.get(fault, "\n")
        self.comments = fault == "comments"
        self.garbage = fault == "garbage"
        self.multiline = fault == "multiline"
        self.event_lines = fault != "no-event-lines"
        self._plain = fault not in ("crlf", "cr", "comments", "garbage", "multiline", "no-event-lines")

    def frame(self, event: _Event) -> bytes:
        data = event.data if isinstance(event.data, str) else _encode_json(event.data)
        if self._plain:
            return (f"event: {event.type}\ndata: {data}\n\n" if event.type else f"data: {data}\n\n").encode()
        lines = [": keep-alive"] if self.comments else []
        if self.garbage:
            lines += _GARBAGE_LINES
        if event.type and self.event_lines:
            lines.append("event: " + event.type)
        if self.multiline and "," in data:
            # the first comma always follows the first key's value, never inside a string
            head, tail = data.split(",", 1)
            lines += ["data: " + head + ",", "data: " + tail]
        else:
            lines.append("data: " + data)
        lines += ["", ""]
        return self.line_end.join(lines).encode()


class _ChunkedWriter:
    """Writes an HTTP/1.1 chunked body, one chunk per write, or in pieces of ``piece_size`` bytes."""

    def __init__(self, wfile: Any, piece_size: int | None = None) -> None:
        self._wfile = wfile
        self._piece_size = piece_size

    def write(self, data: bytes) -> None:
        step = self._piece_size or len(data)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            self._wfile.write(b"%X\r\n%b\r\n" % (len(piece), piece))

    def close(self) -> None:
        self._wfile.write(b"0\r\n\r\n")


def _wait_for_eof(sock: socket.socket, stopping: threading.Event, limit: float) -> bool:
    """Wait, without writing, until the peer closes ``sock`` (True), or ``stopping`` or ``limit`` s."""
    deadline = time.monotonic() + limit
    while not stopping.is_set() and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if not readable:
            continue
        try:
            if not sock.recv(1, socket.MSG_PEEK):
                return True
        except OSError:
            return True
        stopping.wait(0.1)  # the client sent more bytes, so it is still there
    return False


# --- HTTP ------------------------------------------------------------------------------------------


class _Canned(NamedTuple):
    """A complete non-stream HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_canned(status: int, body: dict, headers: tuple[tuple[str, str], ...] = ()) -> _Canned:
    return _Canned(status, _encode_json(body).encode(), "application/json", headers)


def _null_answer(endpoint: str, model: str) -> dict:
    created = int(time.time())
    if endpoint == "chat":
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {
            "id": "chatcmpl-simnull",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": None,
            "usage": usage,
        }
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "id": "resp_simnull",
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": model,
        "output": None,
        "usage": usage,
    }


def _canned_fault(name: str, number: int, model: str, endpoint: str, stream: bool) -> _Canned | None:
    """The fixed reply that fault ``name`` gives instead of an answer, or None."""
    too_many = _aihubmix_error(f"The {model} model Too many requests; please try again later.")
    if name == "401":
        return _json_canned(401, _invalid_token_error())
    if name == "403":
        message = f"insufficient_user_quota (tid: {_trace_id()})"
        return _json_canned(403, _aihubmix_error(message, code="insufficient_user_quota"))
    if name == "404":
        message = f"The model `{model}` does not exist or you do not have access to it."
        return _json_canned(404, _openai_error(message, "model_not_found"))
    if name == "unknown-model":
        return _json_canned(400, _incorrect_model_error())
    if name == "400":
        return _json_canned(400, _aihubmix_error(f"bad channel id (tid: {_trace_id()})"))
    if name == "503":
        return _json_canned(503, _incorrect_model_error())
    if name == "429":
        return _json_canned(429, too_many, (("retry-after-ms", "20"),))
    if name == "retry-after":
        return _json_canned(429, too_many, (("retry-after", str(number)),))
    if name == "retry-after-ms":
        return _json_canned(429, too_many, (("retry-after-ms", str(number)),))
    if name == "retry-after-date":
        when = email.utils.formatdate(time.time() + number, usegmt=True)
        return _json_canned(429, too_many, (("retry-after", when),))
    if name == "408":
        return _json_canned(408, _aihubmix_error("Request Timeout"))
    if name == "409":
        return _json_canned(409, _aihubmix_error("Conflict: a concurrent request is being processed"))
    if name == "should-retry":
        return _json_canned(400, _aihubmix_error("temporarily rejected"), (("x-should-retry", "true"),))
    if name == "500-no-retry":
        return _json_canned(500, _upstream_error("upstream error"), (("x-should-retry", "false"),))
    if name == "html-200":
        return _Canned(200, _PROXY_SIGN_IN.encode(), "text/html; charset=utf-8")
    if name == "500":
        return _json_canned(500, _upstream_error("upstream error"))
    if name == "html":
        return _Canned(502, _HTML_502.encode(), "text/html")
    if name == "200-error":
        body = _aihubmix_error(f"get_adaptor_failed (tid: {_trace_id()})")
        return _json_canned(200, {**body, "type": "error"})
    if name == "null-choices":
        return _json_canned(200, _null_answer(endpoint, model))
    if stream:
        return None
    if name == "garbage":
        return _Canned(200, b"this is not json <<<", "text/plain")
    if name == "bad-json":
        return _Canned(200, b'{"id": "chatcmpl-sim", "choices": [{', "application/json")
    if name in ("error-event", "error-event-flat") or (name == "failed" and endpoint == "chat"):
        return _json_canned(500, _upstream_error("upstream stream error"))
    return None


_ROUTES = {
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/responses"): "responses",
}
_INVALID_JSON = object()
_BAD_JSON_EVENT = _Event(None, '{"choices": [')


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _INVALID_JSON


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AiHubMixSimulator/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: no request lines in test output or in a notebook's log."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def _simulator(self) -> Simulator:
        return self.server.simulator

    def _handle(self) -> None:
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        body = _parse_body(self.rfile.read(length))
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorded_body = None if body is _INVALID_JSON else body
        path = urlsplit(self.path).path.rstrip("/")
        account = (self.command, path) in _ACCOUNT_ROUTES  # catalog, billing, status: statistics of their own
        if not getattr(self, "_connection_counted", False):  # a connection counts from its first request
            self._connection_counted = True
            self._simulator._count_connection(account=account)
        self._simulator._record(
            RecordedRequest(self.command, self.path, headers, recorded_body, time.monotonic()), account=account
        )
        route = _ROUTES.get((self.command, path))
        self._rate_headers: tuple[tuple[str, str], ...] = ()
        if route in ("chat", "responses") and self._simulator.rate_limit and self._is_authorized():
            allowed, wait, self._rate_headers = self._simulator._take_token()
            if not allowed:  # over the limit: a 429 at once, as a gateway's limiter answers
                message = _aihubmix_error("Too many requests; please try again later.")
                retry = (("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),
                         ("retry-after", str(max(1, math.ceil(wait)))))
                self._send(_json_canned(429, message, retry))
                return
        if self._simulator.latency and not account:
            time.sleep(self._simulator.latency)
        if path.startswith("/v1/") and not self._is_authorized():
            self._send(_json_canned(401, _invalid_token_error()))
            return
        if (self.command, path) in _ACCOUNT_ROUTES:
            _serve_account(self, _ACCOUNT_ROUTES[(self.command, path)])
        elif route is None:
            self._send(_json_canned(404, _openai_error(f"Invalid URL ({self.command} {path})")))
        elif route == "models":
            self._send(_json_canned(200, _models_list()))
        else:
            self._generate(route, body)

    def _is_authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self._simulator.api_key is None or token == self._simulator.api_key

    def _generate(self, endpoint: str, body: Any) -> None:
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request: it must be a JSON object."
            self._send(_json_canned(400, _openai_error(message)))
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send(_json_canned(400, _openai_error("you must provide a model parameter")))
            return
        if model not in _OWNERS and not model.startswith("sim-"):
            self._send(_json_canned(self._simulator.unknown_model_status, _incorrect_model_error()))
            return
        fault = _Fault.parse(model)
        stream = body.get("stream") is True
        if fault.name == "latency":
            time.sleep(fault.number / 1000)
        name = fault.name
        if name in ("flaky-429", "flaky-500", "flaky-408", "flaky-409", "should-retry"):
            failing = self._simulator._take_flaky_turn(model, fault.number)
            name = (name if name == "should-retry" else name[len("flaky-") :]) if failing else ""
        canned = _canned_fault(name, fault.number, model, endpoint, stream)
        if name == "no-web" and _wants_web_search(endpoint, body):
            message = f"The model {model} does not support web_search (tid: {_trace_id()})"
            canned = _json_canned(400, _aihubmix_error(message))
        if name == "400-echo-headers":  # a debugging proxy that quotes the request back
            headers = "; ".join(f"{key}: {value}" for key, value in self.headers.items())
            canned = _json_canned(400, _openai_error(f"Bad request. Headers received: {headers}"))
        if canned is not None:
            self._send(canned)
        elif name in ("drop", "stall") and not stream:
            if name == "stall":
                self._stall()
            self._abort()
        else:
            reply = _Reply.build(endpoint, body, fault)
            if name == "echo-headers":  # like httpbin's /headers: the answer is the request's headers
                lines = "\n".join(f"{key}: {value}" for key, value in self.headers.items())
                reply = dataclasses.replace(reply, tokens=tuple(_tokenize("Headers received:\n\n" + lines)))
            if stream:
                self._stream(reply, fault)
            else:
                self._send(
                    _json_canned(
                        200, _chat_completion(reply) if endpoint == "chat" else _response_json(reply)
                    )
                )

    def _send(self, canned: _Canned) -> None:
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(canned.body)))
        for name, value in (*canned.headers, *getattr(self, "_rate_headers", ())):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(canned.body)

    def _stream(self, reply: _Reply, fault: _Fault) -> None:
        framing = _Framing(fault.name)
        events = _iter_chat_events(reply) if reply.endpoint == "chat" else _ResponsesEvents(reply)
        delay = fault.token_delay if fault.token_delay is not None else self._simulator.delay
        junk_after = 3 if fault.name == "bad-json" else -1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in self._rate_headers:
            self.send_header(name, value)
        self.end_headers()
        writer = _ChunkedWriter(self.wfile, 7 if fault.name == "chunked-utf8" else None)
        tokens_sent = 0
        try:
            for event in events:
                if event.is_token:
                    if tokens_sent == junk_after:
                        writer.write(framing.frame(_BAD_JSON_EVENT))
                    if delay:
                        time.sleep(delay)
                    tokens_sent += 1
                writer.write(framing.frame(event))
            if reply.ending == "stall":
                self._stall()
            if reply.ending in ("drop", "stall"):
                self._abort()
            else:
                writer.close()
        except ConnectionError:
            self._client_left()

    def _stall(self) -> None:
        """Send nothing until the client goes away (a disconnect), the simulator stops, or 120 s pass."""
        if _wait_for_eof(self.connection, self.server.stopping, _STALL_LIMIT):
            self._client_left()

    def _client_left(self) -> None:
        self.close_connection = True
        self._simulator._record_disconnect(self.path)

    def _abort(self) -> None:
        """Cut the connection without finishing the response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _models_list() -> dict:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 1626777600, "owned_by": owner}
            for model, owner in _OWNERS.items()
        ],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.ssl_context = simulator.ssl_context
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can take seconds on an offline machine
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        if self.ssl_context is not None:  # the handshake happens on the first read, in the handler's thread
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client going away is not an error
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End the stalls and the idle keep-alive connections, so that their threads finish."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- the model catalog and the billing endpoints -------------------------------------------------------
# GET /api/v1/models (public, AiHubMix's rich catalog with prices per 1M tokens), the billing endpoints of
# PROTOCOL §1 (with the key) and GET /api/status. Their faults are chosen by Simulator(catalog=...,
# billing=...) or, for the catalog, by a ``fault`` query parameter (``/api/v1/models?fault=down``).

CATALOG_FAULTS: dict[str, str] = {
    "ok": "the catalog, with prices for every model (the default)",
    "down": "HTTP 500",
    "slow": "the catalog, after catalog_delay seconds (default 3)",
    "not-json": "HTTP 200 with an HTML maintenance page",
    "wrong-shape": 'HTTP 200 with {"success": true, "data": {"models": "…"}} (no list)',
    "unsuccessful": 'HTTP 200 with {"success": false, "message": "…"}, as AiHubMix reports failures',
}
BILLING_FAULTS: dict[str, str] = {
    "ok": "every billing endpoint answers (the default)",
    "down": "every billing endpoint answers HTTP 500",
    "partial": "remain answers 500, subscription lacks soft_limit_usd; usage and /api/status answer",
    "quota-units": "/api/status says display_in_currency: false; amounts are quota units (500,000 per USD)",
}
_ALL_MODALITIES = "text,image,audio,video,pdf"
_GPT_FEATURES = "tools,function_calling,structured_outputs"
# model id: (features, input modalities, context length, max output, pricing per 1M tokens). A few entries
# use the other shapes a tolerant reader must accept: numbers as strings, a list instead of a comma
# string, a null cache price, only `tools` or only `function_calling` for tool calls.
_CATALOG: dict[str, tuple[Any, Any, Any, Any, Any]] = {
    # the simulator reasons on request with any model; gpt-4o-mini, its default, is listed with `thinking`
    "gpt-4o-mini": ("thinking," + _GPT_FEATURES, "text,image", 128000, 16384,
                    {"input": 0.15, "output": 0.6, "cache_read": 0.075}),
    "gpt-4o": (_GPT_FEATURES, "text,image", 128000, 16384, {"input": 2.5, "output": 10, "cache_read": 1.25}),
    "gpt-4.1-mini": (_GPT_FEATURES + ",long_context", "text,image", 1047576, 32768,
                     {"input": 0.4, "output": 1.6, "cache_read": 0.1}),
    "gpt-5.4": ("thinking," + _GPT_FEATURES, "text,image,pdf", 400000, 128000,
                {"input": 1.25, "output": 10, "cache_read": 0.125}),
    "o4-mini": ("thinking,tools,function_calling,structured_outputs", "text,image", 200000, 100000,
                {"input": 1.1, "output": 4.4, "cache_read": 0.275}),
    "claude-sonnet-4-5": ("thinking,tools,function_calling", "text,image,pdf", 200000, 64000,
                          {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}),
    "claude-sonnet-4-5-think": ("thinking,tools", "text,image,pdf", 200000, 64000,
                                {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}),
    "claude-haiku-4-5": ("tools,function_calling", "text,image", 200000, 64000,
                         {"input": 1, "output": 5, "cache_read": 0.1, "cache_write": 1.25}),
    "gemini-2.5-flash": ("thinking,tools,function_calling,structured_outputs,web,long_context", _ALL_MODALITIES,
                         1048576, 65536, {"input": 0.3, "output": 2.5, "cache_read": 0.075}),
    "gemini-2.5-flash-nothink": ("tools,function_calling,structured_outputs,web,long_context", _ALL_MODALITIES,
                                 1048576, 65536, {"input": 0.3, "output": 2.5, "cache_read": 0.075}),
    "gemini-3.1-pro-preview": ("thinking,tools,function_calling,structured_outputs,web,long_context",
                               _ALL_MODALITIES, 1048576, 65536, {"input": 2, "output": 12, "cache_read": 0.2}),
    "deepseek-chat": ("tools", "text", 128000, 8192, {"input": "0.28", "output": "0.42", "cache_read": "0.028"}),
    "deepseek-reasoner": ("thinking,function_calling", "text", 128000, 65536,
                          {"input": "0.28", "output": "0.42", "cache_read": "0.028"}),
    "qwen3-coder": (["tools", "function_calling", "long_context"], ["text"], "262144", "65536",
                    {"input": 0.3, "output": 1.5, "cache_read": None}),
    "Kimi-K2-0905": ("tools,function_calling", "text", 262144, 16384, {"input": 0.6, "output": 2.5}),
    "sim-free": ("tools", "text", 1000, 512, {"input": 0, "output": 0}),
    "sim-cached": ("", "text", 128000, 8192, {"input": 2, "output": 8, "cache_read": 0.5}),
    "sim-unpriced": ("", "text", 8192, 1024, None),
}
CATALOG_MODELS: list[str] = list(_CATALOG)
_BILLING = {"limit": 20.0, "used_cents": 523.4, "remain": 14.766, "quota_per_unit": 500_000}


def _catalog_entry(model_id: str) -> dict:
    features, modalities, context, max_output, pricing = _CATALOG[model_id]
    entry: dict[str, Any] = {
        "model_id": model_id,
        "desc": f"{model_id} (simulated catalog entry; prices are examples)",
        "types": "llm",
        "features": features,
        "input_modalities": modalities,
        "max_output": max_output,
        "context_length": context,
    }
    if pricing is not None:
        entry["pricing"] = pricing
    return entry


def _names_of(value: Any) -> set[str]:
    pieces = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return {str(piece).strip().lower() for piece in pieces if str(piece).strip()}


def _catalog_body(query: dict[str, list[str]]) -> dict:
    """The catalog filtered and sorted as the query asks (type/types, features, modalities, model,
    sort_by, sort_order)."""
    def first(name: str) -> str:
        return (query.get(name) or [""])[0].strip()

    entries = [_catalog_entry(model_id) for model_id in _CATALOG]
    kind = first("type") or first("types")
    if kind:
        entries = [e for e in entries if kind.lower() in _names_of(e["types"])]
    for name, field_name in (("features", "features"), ("modalities", "input_modalities")):
        wanted = _names_of(first(name))
        if wanted:
            entries = [e for e in entries if wanted <= _names_of(e[field_name])]
    needle = first("model").lower()
    if needle:
        entries = [e for e in entries if needle in e["model_id"].lower()]
    sort_by = first("sort_by")
    if sort_by in ("context_length", "model_ratio"):
        def number(entry: dict) -> float:
            value: Any = entry["context_length"] if sort_by == "context_length" else (entry.get("pricing") or {}).get("input")
            try:
                return float(value)
            except (TypeError, ValueError):
                return 0.0

        entries.sort(key=number, reverse=first("sort_order").lower() == "desc")
    elif first("sort_order").lower() == "desc":
        entries.reverse()
    return {"success": True, "message": "", "data": entries}


def _catalog_canned(fault: str, query: dict[str, list[str]]) -> _Canned:
    if fault == "down":
        return _json_canned(500, {"success": False, "message": "internal server error"})
    if fault == "not-json":
        page = "<html><body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>"
        return _Canned(200, page.encode(), "text/html; charset=utf-8")
    if fault == "wrong-shape":
        return _json_canned(200, {"success": True, "data": {"models": "see https://aihubmix.com/models"}})
    if fault == "unsuccessful":
        return _json_canned(200, {"success": False, "message": "model list temporarily unavailable"})
    return _json_canned(200, _catalog_body(query), (("Cache-Control", "max-age=300"),))


def _billing_canned(route: str, fault: str, authorized: bool) -> _Canned:
    if route == "status":
        in_currency = fault != "quota-units"
        return _json_canned(200, {"success": True, "message": "", "data": {
            "system_name": "AiHubMix simulator", "quota_per_unit": _BILLING["quota_per_unit"],
            "display_in_currency": in_currency}})
    if not authorized:
        return _json_canned(401, _invalid_token_error())
    if fault == "down" or (fault == "partial" and route == "billing-remain"):
        return _json_canned(500, {"error": {"message": "billing is unavailable", "type": "Aihubmix_api_error"}})
    scale = _BILLING["quota_per_unit"] if fault == "quota-units" else 1
    if route == "billing-subscription":
        body: dict = {"object": "billing_subscription", "has_payment_method": True,
                      "hard_limit_usd": _BILLING["limit"] * scale, "access_until": 0}
        if fault != "partial":
            body["soft_limit_usd"] = _BILLING["limit"] * scale
        return _json_canned(200, body)
    if route == "billing-usage":
        return _json_canned(200, {"object": "list", "total_usage": _BILLING["used_cents"] * scale})
    return _json_canned(200, {"object": "list", "total_usage": _BILLING["remain"] * scale})


def _serve_account(handler: _Handler, route: str) -> None:
    """The catalog, the billing endpoints and /api/status, with the simulator's chosen faults."""
    simulator = handler._simulator
    if route == "catalog":
        query = parse_qs(urlsplit(handler.path).query)
        fault = (query.get("fault") or [simulator.catalog])[0]
        if fault not in CATALOG_FAULTS:
            handler._send(_json_canned(400, {"success": False, "message": f"unknown fault {fault!r}"}))
            return
        if fault == "slow" and handler.server.stopping.wait(simulator.catalog_delay):
            handler._abort()  # the simulator is stopping
            return
        handler._send(_catalog_canned(fault, query))
        return
    handler._send(_billing_canned(route, simulator.billing, handler._is_authorized()))


_ACCOUNT_ROUTES = {
    ("GET", "/api/v1/models"): "catalog",
    ("GET", "/v1/dashboard/billing/subscription"): "billing-subscription",
    ("GET", "/dashboard/billing/usage"): "billing-usage",
    ("GET", "/dashboard/billing/remain"): "billing-remain",
    ("GET", "/api/status"): "status",
}


# --- public API ------------------------------------------------------------------------------------


class Simulator:
    """An AiHubMix-like gateway on a loopback port, serving from a background thread.

    ``api_key=None`` accepts any non-empty bearer token; ``delay`` is the time between streamed
    tokens and ``latency`` the time before each response starts, in seconds; ``unknown_model_status`` is
    the HTTP status of the answer to a model it does not know (400; AiHubMix also uses 404 and 503).
    ``rate_limit`` (requests a second, None: no limit) puts a token bucket of ``rate_limit_burst`` tokens
    (default: one second's worth, at least 1) in front of the generation endpoints: over it, HTTP 429 with
    ``retry-after-ms`` and ``retry-after``; ``rate_limit_headers`` adds ``x-ratelimit-*`` headers to every
    answer. The statistics (``requests``, ``connections_opened``, ``disconnects``, ``rate_limited``) are
    thread-safe and cleared by ``reset()``, which also fills the bucket again; they count the API
    (``/v1/models``, chat, responses, and any unknown path), while ``account_requests`` and
    ``account_connections`` count the catalog, billing and status requests and the connections they opened
    (a connection counts once, from its first request). ``catalog`` picks how ``GET /api/v1/models``
    answers (``CATALOG_FAULTS``: ok, down, slow, not-json, wrong-shape, unsuccessful; ``slow`` waits
    ``catalog_delay`` seconds) and ``billing`` how the billing endpoints do (``BILLING_FAULTS``: ok, down,
    partial, quota-units). ``ssl_context`` (a server-side ``ssl.SSLContext`` with its certificate loaded)
    serves HTTPS instead of HTTP, for tests of TLS clients.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        latency: float = 0.0,
        unknown_model_status: int = 400,
        catalog: str = "ok",
        catalog_delay: float = 3.0,
        billing: str = "ok",
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_headers: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        if catalog not in CATALOG_FAULTS or billing not in BILLING_FAULTS:
            raise ValueError(f"catalog must be one of {', '.join(CATALOG_FAULTS)} and billing one of "
                             f"{', '.join(BILLING_FAULTS)}")
        self.catalog = catalog
        self.catalog_delay = catalog_delay
        self.billing = billing
        self.unknown_model_status = unknown_model_status
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number of requests a second, not {rate_limit!r}")
        self.rate_limit = rate_limit
        self.rate_limit_burst = rate_limit_burst if rate_limit_burst is not None else max(1.0, rate_limit or 1.0)
        self.rate_limit_headers = rate_limit_headers
        self.rate_limited = 0
        self._tokens = self.rate_limit_burst
        self._tokens_at = time.monotonic()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.delay = delay
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.connections_opened = 0
        self.account_requests: list[RecordedRequest] = []  # catalog, billing and status requests
        self.account_connections = 0  # connections whose first request was one of those
        self.disconnects: list[tuple[float, str]] = []
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        self._flaky_counts: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<Simulator {self.base_url} {state}>"

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def start(self) -> Simulator:
        """Listen and serve in a daemon thread; with ``port=0`` the port is chosen now."""
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"aihubmix-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Clear the statistics and the ``sim-flaky-*`` counters."""
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self.connections_opened = 0
            self.account_requests.clear()
            self.account_connections = 0
            self._flaky_counts.clear()
            self.disconnected.clear()
            self.rate_limited = 0
            self._tokens = self.rate_limit_burst
            self._tokens_at = time.monotonic()

    def wait_for_disconnect(self, timeout: float | None = None) -> bool:
        """Wait until a client leaves in the middle of a stream; False if ``timeout`` passes first."""
        return self.disconnected.wait(timeout)

    def _record(self, request: RecordedRequest, account: bool = False) -> None:
        with self._lock:
            (self.account_requests if account else self.requests).append(request)

    def _count_connection(self, account: bool = False) -> None:
        with self._lock:
            if account:
                self.account_connections += 1
            else:
                self.connections_opened += 1

    def _record_disconnect(self, path: str) -> None:
        with self._lock:
            self.disconnects.append((time.monotonic(), path))
            self.disconnected.set()

    def _take_token(self) -> tuple[bool, float, tuple[tuple[str, str], ...]]:
        """Take a token from the rate-limit bucket: (allowed, seconds until the next token, headers to send)."""
        rate = self.rate_limit or 1.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate_limit_burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            else:
                self.rate_limited += 1
            wait = max(0.0, (1.0 - self._tokens) / rate)
            headers: tuple[tuple[str, str], ...] = ()
            if self.rate_limit_headers:
                full = (self.rate_limit_burst - self._tokens) / rate
                headers = (("x-ratelimit-limit-requests", f"{self.rate_limit_burst:g}"),
                           ("x-ratelimit-remaining-requests", str(int(self._tokens))),
                           ("x-ratelimit-reset-requests", f"{full:.3f}s"))
        return allowed, wait, headers

    def _take_flaky_turn(self, model: str, failures: int) -> bool:
        """Count a request for a ``sim-flaky-*`` model; True while it is one of the first ``failures``."""
        with self._lock:
            count = self._flaky_counts.get(model, 0)
            self._flaky_counts[model] = count + 1
        return count < failures


def _fault_help() -> str:
    width = max(map(len, FAULT_MODELS)) + 2
    models = textwrap.fill(
        ", ".join(MODELS), width=100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    lines = [
        "models:",
        models,
        "",
        "fault models (any other sim-* name answers normally; a missing N or S is 1):",
    ]
    lines += [f"  {name.ljust(width)}{description}" for name, description in FAULT_MODELS.items()]
    lines += ["", "model catalog (GET /api/v1/models; --catalog, or ?fault= on its URL):"]
    lines += [f"  {name.ljust(width)}{description}" for name, description in CATALOG_FAULTS.items()]
    lines += ["", "billing endpoints (/v1/dashboard/billing/subscription, /dashboard/billing/usage, "
              "/dashboard/billing/remain, /api/status; --billing):"]
    lines += [f"  {name.ljust(width)}{description}" for name, description in BILLING_FAULTS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m aihubmix_magic.simulator",
        description="An OpenAI-compatible AiHubMix gateway on loopback that simulates answers and faults.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed tokens (default: 0)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each response (default: 0)"
    )
    parser.add_argument("--api-key", help="the only key to accept (default: any non-empty key)")
    parser.add_argument("--catalog", choices=list(CATALOG_FAULTS), default="ok",
                        help="how GET /api/v1/models answers (default: %(default)s)")
    parser.add_argument("--billing", choices=list(BILLING_FAULTS), default="ok",
                        help="how the billing endpoints answer (default: %(default)s)")
    parser.add_argument("--rate-limit", type=float, metavar="R",
                        help="at most R requests a second (a token bucket); over it: HTTP 429 with retry-after")
    parser.add_argument("--rate-limit-burst", type=float, metavar="B", help="the bucket's size (default: R, at least 1)")
    parser.add_argument("--rate-limit-headers", action="store_true",
                        help="send x-ratelimit-limit/remaining/reset-requests with every answer")
    args = parser.parse_args(argv)
    with Simulator(
        args.host, args.port, api_key=args.api_key, delay=args.delay, latency=args.latency,
        catalog=args.catalog, billing=args.billing, rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst, rate_limit_headers=args.rate_limit_headers,
    ) as simulator:
        print(f"AiHubMix simulator on {simulator.base_url} (answers are simulated)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0

