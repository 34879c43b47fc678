"""What a prompt asks for, read the way a person skims it: the item, the instruction, sentiment, choices,
yes/no questions, the shape of a JSON answer."""

from __future__ import annotations

import json
import random
import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    pass

from .data import _VOCABULARY

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
