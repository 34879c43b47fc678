"""Demo answers that make sense: the simulator's answers follow the prompt's shape. Asked as a new user
would, through the real magic or batch() and the simulator over a real socket."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from aihubmix_magic import batch, last_response

REVIEWS = Path(__file__).resolve().parent.parent / "examples" / "data" / "reviews.csv"
EXPECTED = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
LABEL_SCHEMA = {  # as in examples/03-data-exploration
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "topic": {"type": "string", "enum": ["quality", "comfort", "delivery", "price", "service"]},
    },
    "required": ["sentiment", "topic"],
    "additionalProperties": False,
}


def agreement(labels: pd.Series, ratings: pd.Series) -> float:
    return float((labels == ratings.map(EXPECTED)).mean())


def test_labels_of_the_bundled_reviews_mostly_agree_with_the_stars(sim, capsys):
    df = pd.read_csv(REVIEWS)
    answers = batch(df, template="Label this review of a {product}.\n\nReview: {review}", model="gpt-4o-mini",
                    system="You label customer reviews for a shop. Answer with JSON only.", progress=False,
                    extra_body={"response_format": {"type": "json_schema", "json_schema": {
                        "name": "review_label", "schema": LABEL_SCHEMA, "strict": True}}})
    labels = answers.map(json.loads).apply(pd.Series)
    assert set(labels.columns) == {"sentiment", "topic"}
    assert set(labels.sentiment) <= {"positive", "neutral", "negative"} and set(labels.topic) <= set(
        LABEL_SCHEMA["properties"]["topic"]["enum"])
    schema_agreement = agreement(labels.sentiment, df.rating)
    one_word = batch(df.review, template="Is this product review positive, neutral or negative? One word.\n\n{}",
                     model="gpt-4o-mini", progress=False)
    assert all(" " not in answer for answer in one_word)
    word_agreement = agreement(one_word, df.rating)
    with capsys.disabled():
        print(f"\nlabel agreement with the star ratings on {len(df)} bundled reviews: schema "
              f"{schema_agreement:.0%}, one word {word_agreement:.0%}")
    assert schema_agreement >= 0.8 and word_agreement >= 0.8
    # the two examples the issue quotes
    assert labels.sentiment[0] == "positive" and df.review[0].startswith("Boils a full litre")
    assert labels.sentiment[3] == "negative" and df.review[3].startswith("Arrived with a dent")
    assert len(sim.requests) == 2 * len(df)
    assert all(r.body["response_format"]["type"] == "json_schema" for r in sim.requests[:len(df)])


@pytest.mark.parametrize(("prompt", "expected"), [
    ("Positive or negative? One word.\n\nArrived with a dent and a cracked base.", "negative"),
    ("Positive, negative or mixed? One word.\n\nSturdy, lovely, and I love the colours.", "positive"),
    ("Answer yes or no: is this review a complaint?\n\nThe zip broke on day three.", "yes"),
    ("Answer yes or no: is this review a complaint?\n\nPerfect, exactly what I wanted.", "no"),
    ("Does this review mention delivery? Yes or No.\n\nThe package arrived empty.", "Yes"),
    ("Classify the topic as sound, battery or comfort. One word.\n\nThe battery lasts all week.", "battery"),
])
def test_a_choice_among_named_options_picks_one(ip, sim, prompt, expected):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", prompt)
    assert last_response().text == expected  # no marker text of its own: usable as a real label
    assert "simulated" not in last_response().text.lower()
    assert sim.requests[-1].body["messages"][-1]["content"] == prompt


def test_a_label_with_a_reason(ip):
    ip.run_cell_magic("aihubmix", "", "Is this product review positive, neutral or negative? Answer in one word, "
                      "then give a one-line reason.\n\nReview: Boils a full litre in under three minutes. "
                      "Exactly what I wanted.")
    assert last_response().text == "Positive — the text says “Exactly what I wanted.”"


def test_lengths_are_honoured(ip):
    ip.run_cell_magic("aihubmix", "", "Describe the ocean in one word.")
    assert len(last_response().text.split()) == 1
    ip.run_cell_magic("aihubmix", "", "In one sentence: why do notebooks suit exploring data?")
    marker, sentence = last_response().text.split("\n\n")
    assert marker == "*Simulated answer from gpt-4o-mini.*" and sentence.count(".") == 1
    ip.run_cell_magic("aihubmix", "", "Explain recursion in two sentences.")
    assert last_response().text.split("\n\n")[1].count(".") == 2
    ip.run_cell_magic("aihubmix", "", "Give me 5 bullet points on sampling.")
    bullets = [line for line in last_response().text.splitlines() if line.startswith("- ")]
    assert len(bullets) == 5
    ip.run_cell_magic("aihubmix", "", "Compare three sorting algorithms in a table.")
    assert "| --- | --- |" in last_response().text
    ip.run_cell_magic("aihubmix", "", "Summarise this review in at most eight words: Boils a full litre in under "
                      "three minutes and switches off on its own.")
    summary = last_response().text.split("\n\n")[1]
    assert summary == "Boils a full litre in under three minutes." and len(summary.split()) <= 8
    ip.run_cell_magic("aihubmix", '-s "Answer in one short paragraph."', "What is entropy?")
    assert len(last_response().text.split("\n\n")) == 2


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_json_has_the_fields_the_prompt_names(ip, sim, endpoint):
    ip.run_cell_magic("aihubmix", f"-f json -e {endpoint}", "Invent a person: a JSON object with fields name and age.")
    value = last_response().parsed
    assert set(value) == {"name", "age"} and isinstance(value["name"], str) and type(value["age"]) is int
    ip.run_cell_magic("aihubmix", f"-f json -e {endpoint}", "Return a book with the keys `title`, `year` and `tags`.")
    value = last_response().parsed
    assert list(value) == ["title", "year", "tags"]
    assert isinstance(value["title"], str) and type(value["year"]) is int and isinstance(value["tags"], list)


def test_json_schema_enum_and_types(ip, sim):
    ip.user_ns["Verdict"] = {"type": "object", "properties": {
        "label": {"type": "string", "enum": ["spam", "ham"]}, "confidence": {"type": "number"},
        "flagged": {"type": "boolean"}, "count": {"type": "integer"}}}
    ip.run_cell_magic("aihubmix", "-f json --schema Verdict", "Is this message spam?\n\nMessage: WIN a FREE spam "
                      "cruise now, click here")
    value = last_response().parsed
    assert value["label"] == "spam" and isinstance(value["confidence"], float)
    assert isinstance(value["flagged"], bool) and type(value["count"]) is int


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_code_is_one_block_that_parses(ip, sim, endpoint):
    ip.rl_next_input = None
    ip.run_cell_magic("aihubmix", f"-f code -e {endpoint}", "Write a python function that reverses a string")
    answer = last_response().text
    assert answer.startswith("```python\n") and answer.endswith("\n```") and answer.count("```") == 2
    code = ip.rl_next_input
    ast.parse(code)
    namespace: dict = {}
    exec(compile(code.split("\n\n\nprint(")[0], "<answer>", "exec"), namespace)
    assert namespace["reverse_string"]("notebook") == "koobeton"


@pytest.mark.parametrize(("prompt", "language"), [
    ("Write a JavaScript function that reverses a string.", "javascript"),
    ("Write a SQL query that lists the reviews table.", "sql"),
    ("Write a function in R that doubles a number.", "r"),
    ("Write a function that cleans the column names of a DataFrame.", "python"),
])
def test_code_in_the_language_asked(ip, prompt, language):
    ip.run_cell_magic("aihubmix", "", prompt)
    answer = last_response().text
    assert answer.startswith(f"```{language}\n") and answer.count("```") == 2
    if language == "python":
        ast.parse(answer.strip("`").removeprefix("python\n"))


def test_prose_is_still_marked_simulated(ip):
    ip.run_cell_magic("aihubmix", "", "Tell me about the history of statistics.")
    assert last_response().text.startswith("*Simulated answer from gpt-4o-mini.*\n\n")


# short reviews of another shop, not used to write the simulator's word lists; the label is the writer's
HELD_OUT = [
    ("bitter and tough, a waste of money", "negative"),
    ("crisp, sweet and perfectly ripe", "positive"),
    ("arrived bruised and soft", "negative"),
    ("delicious and juicy, will buy again", "positive"),
    ("fine, nothing special", "neutral"),
    ("The strawberries were mouldy after one day.", "negative"),
    ("Lovely fresh bread, still warm when it came.", "positive"),
    ("It's okay.", "neutral"),
    ("Terrible customer service, nobody answered my emails.", "negative"),
    ("Great value for the price, I recommend it.", "positive"),
    ("The box was damaged and two jars were broken.", "negative"),
    ("Tastes good and the kids love it", "positive"),
    ("Average coffee, decent but nothing to write home about", "neutral"),
    ("Stale crackers, had to throw them out", "negative"),
    ("Excellent quality, fast delivery", "positive"),
    ("the cheese was bland and watery", "negative"),
    ("Works as described.", "neutral"),
    ("Wonderful flavour, my new favourite tea!", "positive"),
    ("Too sour for me and the pack leaked.", "negative"),
    ("Happy with it, nice and sturdy.", "positive"),
]
WORDINGS = [
    "Is this review positive, neutral or negative? Answer with one word. Review: {}",
    "Classify the sentiment of this review as positive, negative or neutral: {}",
    "{}\n\nSentiment (positive/negative/neutral)? One word.",
    "Review: {}\nIs the review above positive, negative or neutral? Answer in one word.",
    "Tell me whether the following customer review is positive, negative, or neutral. Reply with the label "
    "only.\n\n\"{}\"",
    "You label reviews. Which one fits, negative, neutral or positive? Just the label please.\nText: {}",
]


def test_labels_come_from_the_item_whatever_the_wording(sim, capsys):
    """The label follows the review, not the instruction's words, wherever the review stands in the prompt."""
    reviews = pd.Series([review for review, _ in HELD_OUT])
    expected = pd.Series([label for _, label in HELD_OUT])
    by_wording = {}
    for wording in WORDINGS:
        answers = batch(reviews, template=wording, model="gpt-4o-mini", progress=False)
        by_wording[wording] = answers.map(lambda text: text.split()[0].strip(".,—").lower())
    table = pd.DataFrame(by_wording)
    agreement = {wording[:40]: float((labels == expected).mean()) for wording, labels in by_wording.items()}
    with capsys.disabled():
        print(f"\nheld-out labels agreeing with the writers', by wording: {agreement}")
    assert table.nunique(axis=1).max() == 1, f"the wording changed a label:\n{table}"  # the item decides
    assert min(agreement.values()) >= 0.8
    assert list(table.iloc[:5, 0]) == ["negative", "positive", "negative", "positive", "neutral"]  # the issue's
